"""Draw a graph spec as a Mermaid flowchart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._spec import GraphSpec

__all__ = ["STATUS_STYLES", "to_mermaid"]

STATUS_STYLES = {
    "completed": "fill:#d3f2dc,stroke:#2f9e44",
    "failed": "fill:#ffd8d8,stroke:#e03131",
    "retrying": "fill:#fff3bf,stroke:#f08c00",
    "running": "fill:#d0ebff,stroke:#1971c2",
    "waiting": "fill:#e5dbff,stroke:#7048e8",
    "parked": "fill:#ffe8cc,stroke:#e8590c",
    "skipped": "fill:#f1f3f5,stroke:#adb5bd,stroke-dasharray:4 3",
    "cancelled": "fill:#e9ecef,stroke:#495057",
}
"""The Mermaid style of each node status a drawing can show (a run's timeline outcomes)."""


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(spec: GraphSpec, status: Mapping[str, str] | None = None) -> str:
    """Mermaid ``flowchart`` source: solid edges always fire, dotted ones are routes; a wait
    node is a hexagon that names its signal, with its timeout route.

    ``status`` (node name -> one of :data:`STATUS_STYLES`) colours those nodes, with a
    ``classDef`` per status used; nodes it leaves out keep the default look.
    """
    ids = {node.name: f"n{i}" for i, node in enumerate(spec.nodes)}
    lines = ["flowchart TD", "    __start__([start])", "    __end__([end])"]
    for node in spec.nodes:
        if node.wait is None:
            lines.append(f'    {ids[node.name]}["{_label(node.name)}"]')
        else:
            text = f"{node.name}<br/>waits for {node.wait.signal}"
            lines.append(f'    {ids[node.name]}{{{{"{_label(text)}"}}}}')
    lines += [f"    __start__ --> {ids[name]}" for name in spec.entry]
    lines += [f"    {ids[e.source]} --> {ids[e.target]}" for e in spec.edges]
    for router in spec.routers:
        for key, target in router.routes:
            lines.append(f'    {ids[router.source]} -. "{_label(key)}" .-> {ids[target]}')
    for node in spec.nodes:
        if node.wait is not None and node.wait.on_timeout is not None:
            lines.append(f'    {ids[node.name]} -. "timeout" .-> {ids[node.wait.on_timeout]}')
    lines += [f"    {ids[name]} --> __end__" for name in spec.finish]
    if status:
        lines += _status_lines(ids, status)
    return "\n".join(lines) + "\n"


def _status_lines(ids: Mapping[str, str], status: Mapping[str, str]) -> list[str]:
    """``classDef`` per status used, then one ``class`` line per status naming its nodes."""
    groups: dict[str, list[str]] = {}
    for name, node_id in ids.items():  # graph order: the same run always draws the same
        value = status.get(name)
        if value in STATUS_STYLES:
            groups.setdefault(value, []).append(node_id)
    lines = [f"    classDef {value} {STATUS_STYLES[value]}" for value in groups]
    lines += [f"    class {','.join(nodes)} {value}" for value, nodes in groups.items()]
    return lines
