"""Find the loops of a graph and the edges that close them.

Nodes wait for *all* their incoming edges (AND-join), so in every cycle one edge must not be
waited for: the edge back into the loop's *head*, the node where each turn starts. Taking that
edge (a *loop-back*) restarts the loop. The head of a loop (a strongly connected component) is
the one node that is entered from outside it or is an entry point; when several are, the one
whose edges from inside the loop are all routes wins (a router decides to loop), then an entry
point. Anything else is ambiguous and reported. Nested loops are found the same way once the
outer loop's back edges are set aside. Declaration order never matters.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Edge", "back_edges"]

Edge = tuple[int, int, bool]
"""``(source, target, is_route)``."""


def back_edges(
    succ: Sequence[Sequence[tuple[int, bool]]], entry: Sequence[int], names: Sequence[str]
) -> tuple[set[Edge], list[str]]:
    """The loop-back edges of the graph, and a problem per loop without a clear head."""
    back: set[Edge] = set()
    problems: list[str] = []
    entries = set(entry)
    preds: list[list[tuple[int, bool]]] = [[] for _ in succ]
    for u, targets in enumerate(succ):
        for t, is_route in targets:
            preds[t].append((u, is_route))
    everything = range(len(succ))
    pending = [c for c in _components(succ, everything, back) if _is_loop(c, succ, back)]
    while pending:
        comp = pending.pop()
        inside = set(comp)
        heads = [v for v in comp if v in entries or any(u not in inside for u, _ in preds[v])]
        into = {v: [(u, r) for u, r in preds[v] if u in inside] for v in heads}
        by_router = [v for v in heads if all(is_route for _, is_route in into[v])]
        choice = by_router or heads
        if len(choice) > 1:
            choice = [v for v in choice if v in entries] or choice
        if len(choice) != 1:
            loop = ", ".join(repr(names[v]) for v in sorted(comp))
            ways = ", ".join(repr(names[v]) for v in sorted(heads)) or "none"
            problems.append(
                f"the loop through {loop} has no single head (it is entered at {ways}); make"
                " one node the only way into the loop, and let a router take the edge back to it"
            )
            continue
        head = choice[0]
        closing = {(u, head, r) for u, r in into[head]}
        back |= closing
        pending += [c for c in _components(succ, comp, back) if _is_loop(c, succ, back)]
    return back, problems


def _is_loop(comp: list[int], succ: Sequence[Sequence[tuple[int, bool]]], back: set[Edge]) -> bool:
    if len(comp) > 1:
        return True
    (v,) = comp
    return any(t == v and (v, t, r) not in back for t, r in succ[v])


def _components(
    succ: Sequence[Sequence[tuple[int, bool]]], nodes: Sequence[int], back: set[Edge]
) -> list[list[int]]:
    """Strongly connected components of ``nodes`` (Tarjan, iterative), ignoring ``back``."""
    allowed = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[list[int]] = []

    def edges(v: int) -> list[int]:
        return [t for t, r in succ[v] if t in allowed and (v, t, r) not in back]

    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, targets = work[-1]
            for t in targets:
                if t not in index:
                    index[t] = low[t] = len(index)
                    stack.append(t)
                    on_stack.add(t)
                    work.append((t, iter(edges(t))))
                    break
                if t in on_stack:
                    low[v] = min(low[v], index[t])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    found.append(comp)
    return found
