"""``Topology``: a spec's structure as integer-indexed tables, with no callables.

It is all the scheduler needs, and it is computed from the spec alone, so any process — a
worker, a deterministic Temporal workflow — derives the same tables from the same spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import SpecError
from ._loops import back_edges
from ._spec import GraphSpec
from ._validate import reachable

__all__ = ["Topology"]


@dataclass(frozen=True, slots=True, eq=False)
class Topology:
    """The scheduling tables of a graph, by node index (the position in ``spec.nodes``)."""

    spec: GraphSpec
    names: tuple[str, ...]
    static_succ: tuple[tuple[int, ...], ...]
    """Targets of unconditional edges (loop-backs excluded)."""
    cond_succ: tuple[tuple[int, ...], ...]
    """Forward (not loop-back) targets of the node's router."""
    routes: tuple[Mapping[str, int] | None, ...]
    """The node's router: route key -> target, or None without a router."""
    back: tuple[frozenset[int], ...]
    """Targets the node's router reaches through a loop-back route."""
    loop_back: tuple[int | None, ...]
    """Target of the node's unconditional edge that closes a loop, if it has one."""
    in_edges: tuple[tuple[tuple[int, bool], ...], ...]
    """Forward in-edges as ``(source, is_conditional)``."""
    indegree: tuple[int, ...]
    """Forward in-edges, plus one for an entry point's start edge."""
    entry: tuple[int, ...]
    is_entry: tuple[bool, ...]
    ancestors: tuple[int, ...]
    """Bitset of the nodes that always finish before this one starts (forward graph)."""
    regions: Mapping[int, frozenset[int]]
    """Loop head -> the nodes a loop-back to it runs again (all it reaches forward)."""
    in_loop: tuple[bool, ...]
    """The node is part of a loop (on a path from a loop's head to an edge back to it): its
    runs count towards ``max_steps``."""
    on_timeout: tuple[int | None, ...] | None
    """A wait node's ``on_timeout`` target. Such a node has two ways out, so its edges are
    conditional here: on receipt it takes :attr:`on_receipt` (plus its router's choice), on
    timeout only this target. None when no wait has one (most graphs)."""
    on_receipt: tuple[frozenset[int], ...]
    """The targets of a wait node's unconditional edges, when it has ``on_timeout``."""

    @classmethod
    def of(cls, spec: GraphSpec) -> Topology:
        """Derive the tables; loops must have a clear head.

        Raises:
            SpecError: a loop has no single head, or a node's loop-back edge makes its other
                edges unreachable.
        """
        index = {node.name: i for i, node in enumerate(spec.nodes)}
        size = len(spec.nodes)
        names = tuple(index)
        entry = tuple(index[name] for name in spec.entry)
        static_all: list[list[int]] = [[] for _ in range(size)]
        for edge in spec.edges:
            static_all[index[edge.source]].append(index[edge.target])
        route_targets: list[list[int]] = [[] for _ in range(size)]
        routes: list[Mapping[str, int] | None] = [None] * size
        for router in spec.routers:
            source = index[router.source]
            routes[source] = {key: index[target] for key, target in router.routes}
            route_targets[source] = list(dict.fromkeys(routes[source].values()))  # type: ignore[union-attr]
        on_timeout: list[int | None] = [None] * size
        on_receipt: list[frozenset[int]] = [frozenset()] * size
        for node in spec.nodes:
            if node.wait is not None and node.wait.on_timeout is not None:
                source = index[node.name]
                on_timeout[source] = target = index[node.wait.on_timeout]
                on_receipt[source] = frozenset(static_all[source])
                targets = [*route_targets[source], *static_all[source], target]
                route_targets[source] = list(dict.fromkeys(targets))
                static_all[source] = []
        succ_all = [
            [(t, False) for t in static_all[s]] + [(t, True) for t in route_targets[s]]
            for s in range(size)
        ]
        back, problems = back_edges(succ_all, entry, names)
        if problems:
            raise SpecError(f"graph {spec.name!r}", problems)

        static_succ = [[t for t in static_all[s] if (s, t, False) not in back] for s in range(size)]
        cond_succ = [[t for t in route_targets[s] if (s, t, True) not in back] for s in range(size)]
        loop_back: list[int | None] = [None] * size
        for source, target, is_route in sorted(back):
            if is_route:
                continue
            others = [names[t] for t in static_succ[source] + route_targets[source]]
            if loop_back[source] is not None or others:
                others += [names[t] for t in (loop_back[source], target) if t is not None]
                problems.append(
                    f"node {names[source]!r} has an edge back to {names[target]!r} that closes a"
                    f" loop, so it always loops; its other edges ({', '.join(map(repr, others))})"
                    " could never fire: decide in a router where to go next"
                )
            loop_back[source] = target
        if problems:
            raise SpecError(f"graph {spec.name!r}", problems)

        in_edges: list[list[tuple[int, bool]]] = [[] for _ in range(size)]
        for source in range(size):
            for target in static_succ[source]:
                in_edges[target].append((source, False))
            for target in cond_succ[source]:
                in_edges[target].append((source, True))
        indegree = [len(edges) for edges in in_edges]
        for i in entry:
            indegree[i] += 1
        forward = [static_succ[s] + cond_succ[s] for s in range(size)]
        by_node = dict(enumerate(forward))
        ancestors = _ancestors(forward)
        regions = {t: frozenset(reachable(by_node, [t])) for _, t, _ in back}
        in_loop = [False] * size
        for source, head, _ in back:  # the loop: what the head reaches that reaches the source
            for n in regions[head]:
                if n == source or (ancestors[source] >> n) & 1:
                    in_loop[n] = True
        return cls(
            spec=spec,
            names=names,
            static_succ=tuple(map(tuple, static_succ)),
            cond_succ=tuple(map(tuple, cond_succ)),
            routes=tuple(routes),
            back=tuple(
                frozenset(t for t in route_targets[s] if (s, t, True) in back) for s in range(size)
            ),
            loop_back=tuple(loop_back),
            in_edges=tuple(map(tuple, in_edges)),
            indegree=tuple(indegree),
            entry=entry,
            is_entry=tuple(i in entry for i in range(size)),
            ancestors=ancestors,
            regions=regions,
            in_loop=tuple(in_loop),
            on_timeout=tuple(on_timeout) if any(t is not None for t in on_timeout) else None,
            on_receipt=tuple(on_receipt),
        )


def _ancestors(forward: list[list[int]]) -> tuple[int, ...]:
    """Ancestor bitsets in the forward graph, which is acyclic by construction."""
    size = len(forward)
    preds: list[list[int]] = [[] for _ in range(size)]
    remaining = [0] * size
    for source, targets in enumerate(forward):
        for target in targets:
            preds[target].append(source)
            remaining[target] += 1
    order = [i for i in range(size) if remaining[i] == 0]
    for i in order:  # Kahn's algorithm; ``order`` grows while we walk it
        for target in forward[i]:
            remaining[target] -= 1
            if remaining[target] == 0:
                order.append(target)
    bits = [0] * size
    for i in order:
        acc = 0
        for p in preds[i]:
            acc |= bits[p] | (1 << p)
        bits[i] = acc
    return tuple(bits)
