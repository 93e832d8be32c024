"""A graph spec drawn as SVG on the server, for the run page: no JavaScript library, nothing
fetched by the browser.

A small layered layout (after Sugiyama): edges that close a loop are turned round, each node
goes one layer below the lowest of the nodes before it (longest path), an edge that spans
several layers passes through a point in each, and a few sweeps order every layer by the mean
position of its neighbours to uncross edges. Solid edges always fire, dashed ones are routes
(labelled with their key) and wait timeouts — as :func:`~belugaflow.graph.to_mermaid` draws
them. Each node is ``<g class="node" data-node="NAME">``; the page colours it by setting
``data-status`` (CSS from :data:`~belugaflow.graph._mermaid.STATUS_STYLES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise
from typing import TYPE_CHECKING

from ..graph._mermaid import STATUS_STYLES

if TYPE_CHECKING:
    from ..graph import GraphSpec

__all__ = ["END", "START", "graph_svg", "status_css"]

START, END = "__start__", "__end__"

_CHAR = 7.4
"""Pixels per character of a 13 px label, roughly: the server cannot measure text."""
_BOX_HEIGHT = 40.0
_LAYER_GAP = 46.0
_NODE_GAP = 30.0
_DUMMY_WIDTH = 8.0
_LABEL_CHAR = 6.4
"""Pixels per character of an 11 px edge label."""
_MARGIN = 16.0
_SWEEPS = 4


@dataclass(slots=True)
class _Vertex:
    key: str
    label: str = ""
    kind: str = "dummy"
    """``node``, ``wait``, ``terminal`` (start, end) or ``dummy`` (a long edge's bend)."""
    note: str = ""
    """A wait node's second line."""
    layer: int = 0
    x: float = 0.0
    width: float = _DUMMY_WIDTH


@dataclass(slots=True)
class _Edge:
    source: str
    target: str
    label: str
    dashed: bool
    chain: list[str] = field(default_factory=list)
    """Vertices from the upper end to the lower one, bends included."""
    reversed: bool = False
    """It closes a loop: laid out from target to source, drawn upwards."""


def graph_svg(spec: GraphSpec) -> str:
    """``spec`` as an SVG element (top to bottom, start to end)."""
    vertices, edges = _graph(spec)
    _turn_loops(vertices, edges)
    layers = _layers(vertices, edges)
    _order(layers, edges)
    width = _place(vertices, layers)
    ports = _ports(vertices, edges)
    height = 2 * _MARGIN + len(layers) * _BOX_HEIGHT + (len(layers) - 1) * _LAYER_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.0f}'
        f' {height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img"'
        f' aria-label="graph {escape(spec.name)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    parts += [_edge_svg(number, edge, vertices, ports) for number, edge in enumerate(edges)]
    index = 0
    for vertex in vertices.values():
        if vertex.kind != "dummy":
            parts.append(_vertex_svg(vertex, index))
            index += 1
    parts.append("</svg>")
    return "\n".join(parts)


def status_css(selector: str = ".node") -> str:
    """CSS rules colouring ``selector[data-status=...] .shape`` per node status."""
    rules = []
    for status, style in STATUS_STYLES.items():
        body = ";".join(style.split(","))
        rules.append(f'{selector}[data-status="{status}"] .shape{{{body}}}')
    return "\n".join(rules)


# -- the graph --------------------------------------------------------------------------------


def _graph(spec: GraphSpec) -> tuple[dict[str, _Vertex], list[_Edge]]:
    vertices = {START: _Vertex(START, "start", "terminal")}
    for node in spec.nodes:
        if node.wait is None:
            vertices[node.name] = _Vertex(node.name, node.name, "node")
        else:
            note = f"waits for {node.wait.signal}"
            vertices[node.name] = _Vertex(node.name, node.name, "wait", note)
    vertices[END] = _Vertex(END, "end", "terminal")
    for vertex in vertices.values():
        chars = max(len(vertex.label), len(vertex.note))
        vertex.width = max(72.0, chars * _CHAR + (44 if vertex.kind == "wait" else 28))
    found: dict[tuple[str, str], _Edge] = {}

    def add(source: str, target: str, label: str = "", dashed: bool = False) -> None:
        edge = found.get((source, target))
        if edge is None:
            found[(source, target)] = _Edge(source, target, label, dashed)
        elif label:  # two routes to one node: one arrow, both keys
            edge.label = f"{edge.label} / {label}" if edge.label else label

    for name in spec.entry:
        add(START, name)
    for e in spec.edges:
        add(e.source, e.target)
    for router in spec.routers:
        for key, target in router.routes:
            add(router.source, target, key, dashed=True)
    for node in spec.nodes:
        if node.wait is not None and node.wait.on_timeout is not None:
            add(node.name, node.wait.on_timeout, "timeout", dashed=True)
    for name in spec.finish:
        add(name, END)
    return vertices, list(found.values())


def _turn_loops(vertices: dict[str, _Vertex], edges: list[_Edge]) -> None:
    """Mark the edges that close a loop (depth first from start, in declaration order)."""
    out: dict[str, list[_Edge]] = {key: [] for key in vertices}
    for edge in edges:
        out[edge.source].append(edge)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(key: str) -> None:
        state[key] = 1
        for edge in out[key]:
            seen = state.get(edge.target)
            if seen == 1:
                edge.reversed = True
            elif seen is None:
                visit(edge.target)
        state[key] = 2

    for key in vertices:  # start first; then any node start does not reach
        if key not in state:
            visit(key)


def _layers(vertices: dict[str, _Vertex], edges: list[_Edge]) -> list[list[str]]:
    """Longest-path layers, with a bend vertex in each layer a long edge crosses."""
    ups: dict[str, list[str]] = {key: [] for key in vertices}
    for edge in edges:
        upper, lower = (edge.target, edge.source) if edge.reversed else (edge.source, edge.target)
        ups[lower].append(upper)
    done: dict[str, int] = {}

    def layer(key: str) -> int:  # the graph without its loops is acyclic
        if key not in done:
            done[key] = 1 + max((layer(up) for up in ups[key]), default=-1)
        return done[key]

    for key, vertex in vertices.items():
        vertex.layer = layer(key)
    vertices[END].layer = max(v.layer for k, v in vertices.items() if k != END) + 1
    layers: list[list[str]] = [[] for _ in range(vertices[END].layer + 1)]
    for key, vertex in vertices.items():
        layers[vertex.layer].append(key)
    for number, edge in enumerate(edges):
        upper, lower = (edge.target, edge.source) if edge.reversed else (edge.source, edge.target)
        edge.chain = [upper]
        for depth in range(vertices[upper].layer + 1, vertices[lower].layer):
            bend = f"\0{number}.{depth}"
            vertices[bend] = _Vertex(bend, layer=depth)
            if edge.label and len(edge.chain) == 1:  # the label sits on the first bend
                vertices[bend].width = len(edge.label) * _LABEL_CHAR + 8
            layers[depth].append(bend)
            edge.chain.append(bend)
        edge.chain.append(lower)
    return layers


def _order(layers: list[list[str]], edges: list[_Edge]) -> None:
    """Order each layer by the mean position of its neighbours, down then up, a few times."""
    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for edge in edges:
        for upper, lower in pairwise(edge.chain):
            downs.setdefault(upper, []).append(lower)
            ups.setdefault(lower, []).append(upper)

    def sweep(rows: list[list[str]], neighbours: dict[str, list[str]]) -> None:
        for before, row in pairwise(rows):
            position = {key: i for i, key in enumerate(before)}
            ranked = sorted(
                (_mean(neighbours.get(key, ()), position, i), i, key) for i, key in enumerate(row)
            )
            row[:] = [key for _, _, key in ranked]

    for _ in range(_SWEEPS):
        sweep(layers, ups)
        sweep(layers[::-1], downs)
    sweep(layers, ups)


def _mean(near: Iterable[str], position: Mapping[str, int], default: int) -> float:
    """The mean position of the vertices ``near`` in the layer before (``default`` if none
    is there)."""
    found = [position[key] for key in near if key in position]
    return sum(found) / len(found) if found else default


def _place(vertices: dict[str, _Vertex], layers: list[list[str]]) -> float:
    """Centre each layer; the drawing's width."""
    widths = [
        sum(vertices[key].width for key in row) + _NODE_GAP * (len(row) - 1) for row in layers
    ]
    total = max(widths) + 2 * _MARGIN
    for row, width in zip(layers, widths, strict=True):
        x = (total - width) / 2
        for key in row:
            vertex = vertices[key]
            vertex.x = x + vertex.width / 2
            x += vertex.width + _NODE_GAP
    return total


def _ports(vertices: dict[str, _Vertex], edges: list[_Edge]) -> dict[tuple[int, int], float]:
    """Where each edge leaves its upper vertex (``(edge, 0)``) and enters its lower one
    (``(edge, -1)``): spread along the box's side in the order of where they go, so that
    arrows and labels do not start on top of each other."""
    ends: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for number, edge in enumerate(edges):
        ends.setdefault((edge.chain[0], 0), []).append((vertices[edge.chain[1]].x, number))
        ends.setdefault((edge.chain[-1], -1), []).append((vertices[edge.chain[-2]].x, number))
    ports: dict[tuple[int, int], float] = {}
    for (key, end), found in ends.items():
        vertex = vertices[key]
        found.sort()
        step = min(24.0, vertex.width * 0.6 / max(1, len(found) - 1))
        for i, (_, number) in enumerate(found):
            ports[(number, end)] = vertex.x + (i - (len(found) - 1) / 2) * step
    return ports


# -- SVG ---------------------------------------------------------------------------------------


def _y(layer: int) -> float:
    """The middle of a layer."""
    return _MARGIN + layer * (_BOX_HEIGHT + _LAYER_GAP) + _BOX_HEIGHT / 2


def _edge_svg(
    number: int, edge: _Edge, vertices: dict[str, _Vertex], ports: dict[tuple[int, int], float]
) -> str:
    points = []
    for i, key in enumerate(edge.chain):
        vertex = vertices[key]
        x, y = vertex.x, _y(vertex.layer)
        if i == 0:
            x, y = ports[(number, 0)], y + _BOX_HEIGHT / 2
        elif i == len(edge.chain) - 1:
            x, y = ports[(number, -1)], y - _BOX_HEIGHT / 2
        points.append((x, y))
    if edge.reversed:  # drawn from its source, below, up to its target
        points.reverse()
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x0, y0), (x1, y1) in pairwise(points):
        middle = (y0 + y1) / 2
        path += f" C{x0:.1f},{middle:.1f} {x1:.1f},{middle:.1f} {x1:.1f},{y1:.1f}"
    kind = "edge route" if edge.dashed else "edge"
    parts = [
        f'<g class="{kind}" data-source="{escape(edge.source)}"'
        f' data-target="{escape(edge.target)}">',
        f'<path d="{path}" marker-end="url(#arrow)"/>',
    ]
    if edge.label:  # on the first bend of a long edge, else half way
        (x0, y0), (x1, y1) = points[0], points[1]
        if len(points) > 2 and not edge.reversed:
            x, y = x1, y1
        else:
            x, y = (x0 + x1) / 2, (y0 + y1) / 2
        parts.append(f'<text x="{x:.1f}" y="{y + 4:.1f}">{escape(edge.label)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _vertex_svg(vertex: _Vertex, index: int) -> str:
    x, y = vertex.x, _y(vertex.layer)
    w, h = vertex.width, _BOX_HEIGHT
    left, top = x - w / 2, y - h / 2
    if vertex.kind == "wait":
        inset = 14.0
        corners = [
            (left, y),
            (left + inset, top),
            (left + w - inset, top),
            (left + w, y),
            (left + w - inset, top + h),
            (left + inset, top + h),
        ]
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in corners)
        shape = f'<polygon class="shape" points="{points}"/>'
    else:
        radius = h / 2 if vertex.kind == "terminal" else 6
        shape = (
            f'<rect class="shape" x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}"'
            f' rx="{radius:.0f}"/>'
        )
    name = escape(vertex.label)
    if vertex.note:
        text = (
            f'<text x="{x:.1f}" y="{y - 3:.1f}">{name}</text>'
            f'<text class="note" x="{x:.1f}" y="{y + 12:.1f}">{escape(vertex.note)}</text>'
        )
    else:
        text = f'<text x="{x:.1f}" y="{y + 4.5:.1f}">{name}</text>'
    return (
        f'<g class="node {vertex.kind}" id="node-{index}" data-node="{escape(vertex.key)}">'
        f"<title>{name}</title>{shape}{text}</g>"
    )
