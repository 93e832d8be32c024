"""Compile a :class:`GraphSpec` plus a registry into a :class:`Plan`: integer-indexed tables
that the scheduler walks without dict lookups or string compares on the hot path."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import SpecError
from .._execute import StepCall
from .._runnable import CallKind, call_kind, sync_capable
from ..resilience import BreakerRegistry
from ._reducers import BUILTIN_REDUCERS, Reducer
from ._registry import Registry
from ._spec import GraphSpec

__all__ = ["Plan", "RouterCall", "compile_plan"]


@dataclass(frozen=True, slots=True)
class RouterCall:
    """A router ready to call: route key -> target node index."""

    fn: Callable[[Any], Any]
    is_async: bool
    routes: Mapping[str, int]
    back: frozenset[int]
    """Targets reached through a loop-back edge (the edge closes a cycle)."""


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """Everything a run needs, by node index (the position in ``spec.nodes``)."""

    spec: GraphSpec
    names: tuple[str, ...]
    steps: tuple[StepCall, ...]
    routers: tuple[RouterCall | None, ...]
    static_succ: tuple[tuple[int, ...], ...]
    """Targets of unconditional edges."""
    cond_succ: tuple[tuple[int, ...], ...]
    """Forward (not loop-back) targets of the node's router."""
    in_edges: tuple[tuple[tuple[int, bool], ...], ...]
    """Forward in-edges as ``(source, is_conditional)``."""
    indegree: tuple[int, ...]
    """Forward in-edges, plus one for an entry point's start edge."""
    entry: tuple[int, ...]
    is_entry: tuple[bool, ...]
    ancestors: tuple[int, ...]
    """Bitset of the nodes that always finish before this one starts (forward graph)."""
    regions: Mapping[int, frozenset[int]]
    """Loop-back target -> the nodes a loop-back to it runs again (all it reaches forward)."""
    reducers: Mapping[str, Reducer]
    sync_ok: bool
    """Every node and router can run without an event loop."""


def compile_plan(spec: GraphSpec, registry: Registry, breakers: BreakerRegistry) -> Plan:
    """Resolve every name of ``spec`` and precompute the scheduling tables.

    Raises:
        SpecError: a callable, breaker or reducer name does not resolve, or a callable does
            not fit its node.
    """
    problems: list[str] = []
    index = {node.name: i for i, node in enumerate(spec.nodes)}
    size = len(spec.nodes)

    steps: list[StepCall] = []
    for node in spec.nodes:
        where = f"node {node.name!r}"
        fn = _resolve(registry, node.ref, where, problems)
        breaker = None
        if node.breaker is not None:
            breaker = breakers.get(node.breaker)
            if breaker is None:
                problems.append(f"{where}: no circuit breaker named {node.breaker!r}")
        if fn is None:
            continue
        try:
            kind = call_kind(fn, blocking=node.blocking, where=where)
        except TypeError as error:
            problems.append(str(error))
            continue
        if kind is CallKind.INLINE and node.timeout is not None:
            kind = CallKind.THREAD  # a plain call can't be interrupted; a thread can be abandoned
        retry = node.retry if node.retry is not None else spec.retry
        steps.append(StepCall(node.name, fn, kind, retry, node.timeout, breaker))

    static_succ: list[list[int]] = [[] for _ in range(size)]
    for edge in spec.edges:
        static_succ[index[edge.source]].append(index[edge.target])
    forward: list[list[int]] = [list(targets) for targets in static_succ]
    cond_succ: list[list[int]] = [[] for _ in range(size)]
    routers: list[RouterCall | None] = [None] * size
    for router in spec.routers:
        source = index[router.source]
        fn = _resolve(registry, router.ref, f"the router after {router.source!r}", problems)
        routes = {key: index[target] for key, target in router.routes}
        back = set()
        for target in dict.fromkeys(routes.values()):
            if target == source or source in _reach(forward, target):
                back.add(target)
            else:
                forward[source].append(target)
                cond_succ[source].append(target)
        if fn is not None:
            routers[source] = RouterCall(
                fn, inspect.iscoroutinefunction(fn), routes, frozenset(back)
            )

    reducers: dict[str, Reducer] = {}
    for key, ref in spec.reducers:
        reducer = BUILTIN_REDUCERS.get(ref) or _resolve(
            registry, ref, f"reducer of {key!r}", problems
        )
        if reducer is not None:
            reducers[key] = reducer
    if problems:
        raise SpecError(f"graph {spec.name!r}", problems)

    in_edges: list[list[tuple[int, bool]]] = [[] for _ in range(size)]
    for source in range(size):
        for target in static_succ[source]:
            in_edges[target].append((source, False))
        for target in cond_succ[source]:
            in_edges[target].append((source, True))
    entry = tuple(index[name] for name in spec.entry)
    indegree = [len(edges) for edges in in_edges]
    for i in entry:
        indegree[i] += 1

    sync_ok = all(sync_capable(s.fn, s.kind) and s.timeout is None for s in steps) and not any(
        r is not None and r.is_async for r in routers
    )
    back_targets = {t for r in routers if r is not None for t in r.back}
    return Plan(
        spec=spec,
        names=tuple(index),
        steps=tuple(steps),
        routers=tuple(routers),
        static_succ=tuple(map(tuple, static_succ)),
        cond_succ=tuple(map(tuple, cond_succ)),
        in_edges=tuple(map(tuple, in_edges)),
        indegree=tuple(indegree),
        entry=entry,
        is_entry=tuple(i in entry for i in range(size)),
        ancestors=_ancestors(forward),
        regions={t: frozenset(_reach(forward, t)) for t in back_targets},
        reducers=reducers,
        sync_ok=sync_ok,
    )


def _resolve(registry: Registry, ref: str, where: str, problems: list[str]) -> Any:
    try:
        return registry.resolve(ref)
    except KeyError as error:
        problems.append(f"{where}: {error.args[0]}")
        return None


def _reach(successors: list[list[int]], start: int) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in successors[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


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
