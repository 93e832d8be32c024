"""Bind a :class:`GraphSpec` to callables: a :class:`Plan` is its :class:`Topology` plus the
steps, routers and reducers its names resolve to in a registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import SpecError
from .._execute import StepCall
from .._runnable import CallKind, call_kind, sync_capable
from ..resilience import BreakerRegistry, RetryPolicy
from ._reducers import BUILTIN_REDUCERS, Reducer
from ._registry import Registry
from ._spec import GraphSpec, NodeSpec
from ._topology import Topology

__all__ = ["COMPENSATION_RETRY", "Plan", "RouterCall", "compile_plan", "resolve_reducers"]


@dataclass(frozen=True, slots=True)
class RouterCall:
    """A node's router, ready to call."""

    fn: Callable[[Any], Any]
    is_async: bool


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """Everything an in-process run needs, by node index."""

    topology: Topology
    steps: tuple[StepCall | None, ...]
    """The node's call; None for a wait node."""
    routers: tuple[RouterCall | None, ...]
    reducers: Mapping[str, Reducer]
    sync_ok: bool
    """Every node and router can run without an event loop, and nothing waits, parks or
    compensates."""
    compensations: tuple[StepCall | None, ...]
    """The call that undoes the node, if it has one."""
    needs_board: bool
    """A node waits, may park or compensates: runs keep a :class:`~._board.RunBoard`."""

    @property
    def spec(self) -> GraphSpec:
        return self.topology.spec


def resolve_reducers(
    spec: GraphSpec, registry: Registry | None, problems: list[str]
) -> dict[str, Reducer]:
    """The spec's reducers: built in by name, else from ``registry``."""
    reducers: dict[str, Reducer] = {}
    for key, ref in spec.reducers:
        reducer = BUILTIN_REDUCERS.get(ref)
        if reducer is None and registry is not None:
            reducer = _resolve(registry, ref, f"reducer of {key!r}", problems)
        elif reducer is None:
            problems.append(f"reducer of {key!r}: {ref!r} is not a built-in reducer")
        if reducer is not None:
            reducers[key] = reducer
    return reducers


def compile_plan(spec: GraphSpec, registry: Registry, breakers: BreakerRegistry) -> Plan:
    """Resolve every name of ``spec`` and derive its topology.

    Raises:
        SpecError: a callable, breaker or reducer name does not resolve, a callable does not
            fit its node, or the topology is invalid.
    """
    problems: list[str] = []
    steps: list[StepCall | None] = []
    compensations: list[StepCall | None] = []
    for node in spec.nodes:
        where = f"node {node.name!r}"
        compensations.append(_compensation(spec, node, registry, problems))
        if node.wait is not None:
            steps.append(None)
            continue
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
        steps.append(StepCall(spec.name, node.name, fn, kind, retry, node.timeout, breaker))

    index = {node.name: i for i, node in enumerate(spec.nodes)}
    routers: list[RouterCall | None] = [None] * len(spec.nodes)
    for router in spec.routers:
        where = f"the router after {router.source!r}"
        fn = _resolve(registry, router.ref, where, problems)
        if fn is None:
            continue
        try:
            # As for nodes: objects with an async __call__ and partials of async functions are
            # awaited too.
            kind = call_kind(fn, where=where)
        except TypeError as error:
            problems.append(str(error))
            continue
        routers[index[router.source]] = RouterCall(fn, kind is CallKind.ASYNC)
    reducers = resolve_reducers(spec, registry, problems)
    if problems:
        raise SpecError(f"graph {spec.name!r}", problems)

    needs_board = any(
        node.wait is not None or node.compensate is not None or node.on_failure == "park"
        for node in spec.nodes
    )
    sync_ok = (
        not needs_board
        and all(s is not None and sync_capable(s.fn, s.kind) and s.timeout is None for s in steps)
        and not any(r is not None and r.is_async for r in routers)
    )
    return Plan(
        topology=Topology.of(spec),
        steps=tuple(steps),
        routers=tuple(routers),
        reducers=reducers,
        sync_ok=sync_ok,
        compensations=tuple(compensations),
        needs_board=needs_board,
    )


COMPENSATION_RETRY = RetryPolicy(max_attempts=0, initial_interval=0.2, max_interval=30.0)
"""Compensation never gives up on a retryable error (0 = unlimited attempts): a stuck undo shows
as a retrying step, never as a half-undone run."""


def _compensation(
    spec: GraphSpec, node: NodeSpec, registry: Registry, problems: list[str]
) -> StepCall | None:
    if node.compensate is None:
        return None
    where = f"the compensation of node {node.name!r}"
    fn = _resolve(registry, node.compensate, where, problems)
    if fn is None:
        return None
    try:
        kind = call_kind(fn, blocking=node.blocking, where=where)
    except TypeError as error:
        problems.append(str(error))
        return None
    return StepCall(spec.name, f"{node.name}.compensate", fn, kind, COMPENSATION_RETRY, None, None)


def _resolve(registry: Registry, ref: str, where: str, problems: list[str]) -> Any:
    try:
        return registry.resolve(ref)
    except KeyError as error:
        problems.append(f"{where}: {error.args[0]}")
        return None
