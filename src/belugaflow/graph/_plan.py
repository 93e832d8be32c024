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
from ._loops import back_edges
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
    """Targets reached through a loop-back route (the route closes a cycle)."""


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """Everything a run needs, by node index (the position in ``spec.nodes``)."""

    spec: GraphSpec
    names: tuple[str, ...]
    steps: tuple[StepCall, ...]
    plain: tuple[bool, ...]
    """Per node: a plain function without a breaker (see ``StepCall.plain``)."""
    routers: tuple[RouterCall | None, ...]
    static_succ: tuple[tuple[int, ...], ...]
    """Targets of unconditional edges."""
    cond_succ: tuple[tuple[int, ...], ...]
    """Forward (not loop-back) targets of the node's router."""
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

    entry = tuple(index[name] for name in spec.entry)
    static_all: list[list[int]] = [[] for _ in range(size)]
    for edge in spec.edges:
        static_all[index[edge.source]].append(index[edge.target])
    route_targets: list[list[int]] = [[] for _ in range(size)]
    for router in spec.routers:
        targets = (index[target] for _, target in router.routes)
        route_targets[index[router.source]] = list(dict.fromkeys(targets))
    succ_all = [
        [(t, False) for t in static_all[s]] + [(t, True) for t in route_targets[s]]
        for s in range(size)
    ]
    back, loop_problems = back_edges(succ_all, entry, [node.name for node in spec.nodes])
    if loop_problems:
        raise SpecError(f"graph {spec.name!r}", problems + loop_problems)

    static_succ = [[t for t in static_all[s] if (s, t, False) not in back] for s in range(size)]
    cond_succ = [[t for t in route_targets[s] if (s, t, True) not in back] for s in range(size)]
    loop_back: list[int | None] = [None] * size
    for source, target, conditional in sorted(back):
        if conditional:
            continue
        others = [spec.nodes[t].name for t in static_succ[source] + route_targets[source]]
        if loop_back[source] is not None or others:
            others += [spec.nodes[t].name for t in (loop_back[source], target) if t is not None]
            problems.append(
                f"node {spec.nodes[source].name!r} has an edge back to"
                f" {spec.nodes[target].name!r} that closes a loop, so it always loops; its"
                f" other edges ({', '.join(map(repr, others))}) could never fire: decide in a"
                " router where to go next"
            )
        loop_back[source] = target
    forward = [static_succ[s] + cond_succ[s] for s in range(size)]

    routers: list[RouterCall | None] = [None] * size
    for router in spec.routers:
        source = index[router.source]
        fn = _resolve(registry, router.ref, f"the router after {router.source!r}", problems)
        if fn is not None:
            routers[source] = RouterCall(
                fn,
                inspect.iscoroutinefunction(fn),
                {key: index[target] for key, target in router.routes},
                frozenset(t for t in route_targets[source] if (source, t, True) in back),
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
    indegree = [len(edges) for edges in in_edges]
    for i in entry:
        indegree[i] += 1

    sync_ok = all(sync_capable(s.fn, s.kind) and s.timeout is None for s in steps) and not any(
        r is not None and r.is_async for r in routers
    )
    back_targets = {target for _, target, _ in back}
    return Plan(
        spec=spec,
        names=tuple(index),
        steps=tuple(steps),
        plain=tuple(step.plain for step in steps),
        routers=tuple(routers),
        static_succ=tuple(map(tuple, static_succ)),
        cond_succ=tuple(map(tuple, cond_succ)),
        in_edges=tuple(map(tuple, in_edges)),
        indegree=tuple(indegree),
        loop_back=tuple(loop_back),
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
