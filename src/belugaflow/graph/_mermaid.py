"""Draw a graph spec as a Mermaid flowchart."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._spec import GraphSpec

__all__ = ["to_mermaid"]


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(spec: GraphSpec) -> str:
    """Mermaid ``flowchart`` source: solid edges always fire, dotted ones are routes; a wait
    node is a hexagon that names its signal, with its timeout route."""
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
    return "\n".join(lines) + "\n"
