"""``GraphWorkflow``: runs any :class:`~belugaflow.graph.GraphSpec` durably.

The workflow drives the same :class:`~belugaflow.graph._scheduler.Scheduler` as the local engine
— same joins, skips, loops, reducers and conflict checks — and runs every node and router as an
activity. The scheduler is pure (no I/O, no clock, no randomness), so it is deterministic under
replay: a run's decisions depend only on the activity results recorded in its history, never on
which activity finished first in wall-clock time.

Events: the run's start, end and skipped nodes come from here, to the hooks of the worker that
runs the workflow (:class:`EventsInterceptor`), and only while the workflow is not replaying
history; node events come from the activities.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, NamedTuple

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from .._defaults import DEFAULTS
    from .._errors import RunError, SpecError
    from .._events import EventKind, Hook, RunEvents
    from ..graph import GraphSpec
    from ..graph._local import emit_skips
    from ..graph._plan import resolve_reducers
    from ..graph._reducers import Reducer, SubgraphUpdate
    from ..graph._scheduler import Scheduler
    from ..graph._topology import Topology
    from ..resilience import RetryPolicy
    from ._failures import NODE_FAILURES, node_failure, run_failure
    from ._messages import (
        NODE_ACTIVITY,
        ROUTE_ACTIVITY,
        SUBGRAPH_TAG,
        NodeCall,
        RouteCall,
    )

__all__ = ["EventsInterceptor", "GraphWorkflow"]

ROUTER_TIMEOUT = timedelta(seconds=30)
ROUTER_RETRY = TemporalRetryPolicy(maximum_attempts=1)
NO_LIMIT = timedelta(days=3650)
"""Temporal needs a time limit per attempt; this one stands for none (a run without timeout)."""


class _Node(NamedTuple):
    """A node's activity options, derived once per spec."""

    retry: RetryPolicy
    temporal_retry: TemporalRetryPolicy
    attempt_limit: timedelta
    """The server's limit per attempt. With a node timeout, a little more than it, so the
    activity's own timeout fires first (a retryable ``CallTimeoutError``, as in process) and the
    server's only catches a worker that died; without one, the run's timeout."""


@functools.lru_cache(maxsize=256)
def _compile(
    spec_json: str,
) -> tuple[GraphSpec, Topology, dict[str, Reducer], tuple[_Node, ...]]:
    """A spec's topology, reducers and node options, built once per worker for each distinct
    definition.

    Keyed by content, not by name and version, so a changed spec that kept its version is
    never confused with the old one. Everything returned is immutable or only read.
    """
    spec = GraphSpec.from_dict(json.loads(spec_json))
    problems: list[str] = []
    reducers = resolve_reducers(spec, None, problems)
    if problems:
        raise SpecError(f"graph {spec.name!r}", problems)
    run_limit = timedelta(seconds=spec.timeout) if spec.timeout else NO_LIMIT
    nodes = []
    for node in spec.nodes:
        retry = node.retry if node.retry is not None else spec.retry
        limit = timedelta(seconds=node.timeout * 1.1 + 1) if node.timeout else run_limit
        nodes.append(_Node(retry, retry.to_temporal(), limit))
    return spec, Topology.of(spec), reducers, tuple(nodes)


_hooks: ContextVar[Sequence[Hook]] = ContextVar("belugaflow_workflow_hooks", default=())


class EventsInterceptor(Interceptor):
    """Gives ``GraphWorkflow`` runs on this worker the worker's event hooks."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = tuple(hooks)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        hooks = self.hooks

        class _Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                _hooks.set(hooks)  # this run's task (and the tasks it creates) sees them
                return await super().execute_workflow(input)

        return _Inbound


class _LiveEvents(RunEvents):
    """A workflow run's events, dropped while the workflow replays history: each is emitted
    once per run, unless a workflow task is retried after the event went out."""

    __slots__ = ()

    def __call__(
        self, kind: EventKind, node: str | None = None, attempt: int = 0, **fields: Any
    ) -> None:
        if not workflow.unsafe.is_replaying():
            super().__call__(kind, node, attempt, **fields)


def _elapsed() -> float:
    return (workflow.now() - workflow.info().start_time).total_seconds()


@workflow.defn(name="belugaflow.graph", sandboxed=False)
class GraphWorkflow:
    """Run a graph spec on its input state and return the final state."""

    def __init__(self) -> None:
        self._running: list[str] = []
        self._done: list[str] = []

    @workflow.query(name="progress")
    def progress(self) -> dict[str, list[str]]:
        """The nodes running now and those completed so far."""
        return {"running": list(self._running), "completed": list(self._done)}

    @workflow.run
    async def run(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """``input`` is a :class:`~belugaflow.temporal._messages.GraphInput`."""
        try:
            spec, topology, reducers, nodes = _compile(json.dumps(input["spec"], sort_keys=True))
        except SpecError as error:  # fails the run for good, never a workflow-task retry
            raise ApplicationError(str(error), type="SpecError", non_retryable=True) from error
        hooks = _hooks.get()
        events = _LiveEvents(hooks, spec.name, workflow.info().workflow_id) if hooks else None
        sched = Scheduler(topology, reducers, dict(input["state"]), record_skips=bool(hooks))
        heartbeat = timedelta(seconds=input.get("heartbeat_timeout", DEFAULTS.heartbeat_timeout))
        if events is not None:
            events(EventKind.RUN_STARTED, state=dict(sched.state))
        try:
            state = await self._drive(spec, sched, nodes, heartbeat, events)
        except RunError as error:
            error.state = dict(sched.state)
            if events is not None:
                events(EventKind.RUN_FAILED, error=error, state=error.state, duration=_elapsed())
            raise run_failure(error) from error.__cause__
        if events is not None:
            events(EventKind.RUN_COMPLETED, state=state, duration=_elapsed())
        return state

    async def _drive(
        self,
        spec: GraphSpec,
        sched: Scheduler,
        nodes: tuple[_Node, ...],
        heartbeat: timedelta,
        events: RunEvents | None,
    ) -> dict[str, Any]:
        topo = sched.topo
        limit = spec.max_workers if spec.parallel else 1
        ready = sched.ready
        running: dict[asyncio.Task[Any], int] = {}
        while True:
            while ready and len(running) < limit:
                i = ready.popleft()
                if sched.start(i):
                    node = self._node(spec, i, nodes[i], sched.steps, sched.state, heartbeat)
                    running[asyncio.create_task(node)] = i
                    self._running.append(topo.names[i])
            if not running:
                return sched.state
            done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=running.__getitem__):  # node order: replay-stable
                i = running.pop(task)
                self._running.remove(topo.names[i])
                update = task.result()
                if isinstance(update, dict) and SUBGRAPH_TAG in update:
                    update = SubgraphUpdate(*update[SUBGRAPH_TAG])
                sched.merge(i, update)
                chosen = None
                if topo.routes[i] is not None:
                    chosen = sched.route(i, await self._route(spec, i, sched.state))
                sched.finish(i, chosen)
                self._done.append(topo.names[i])
                if events is not None:
                    emit_skips(sched, events)

    async def _node(
        self,
        spec: GraphSpec,
        i: int,
        options: _Node,
        step: int,
        state: dict[str, Any],
        heartbeat: timedelta,
    ) -> Any:
        node = spec.nodes[i]
        call = NodeCall(
            graph=spec.name, node=node.name, ref=node.ref, state=dict(state), blocking=node.blocking
        )
        if node.timeout is not None:
            call["timeout"] = node.timeout
        if node.breaker is not None:
            call["breaker"] = node.breaker
        activity_id = f"{step}:{node.name}"  # readable in the UI, unique across loops
        try:
            if node.short:
                return await workflow.execute_local_activity(
                    NODE_ACTIVITY,
                    call,
                    start_to_close_timeout=options.attempt_limit,
                    retry_policy=options.temporal_retry,
                    activity_id=activity_id,
                )
            return await workflow.execute_activity(
                NODE_ACTIVITY,
                call,
                start_to_close_timeout=options.attempt_limit,
                heartbeat_timeout=heartbeat if heartbeat < options.attempt_limit else None,
                retry_policy=options.temporal_retry,
                activity_id=activity_id,
            )
        except NODE_FAILURES as error:
            failed = node_failure(spec.name, node.name, options.retry, error)
            raise failed from failed.__cause__

    async def _route(self, spec: GraphSpec, i: int, state: dict[str, Any]) -> Any:
        router = next(r for r in spec.routers if r.source == spec.nodes[i].name)
        try:
            return await workflow.execute_local_activity(
                ROUTE_ACTIVITY,
                RouteCall(graph=spec.name, node=router.source, ref=router.ref, state=dict(state)),
                start_to_close_timeout=ROUTER_TIMEOUT,
                retry_policy=ROUTER_RETRY,  # a router is a pure decision: retrying cannot help
            )
        except NODE_FAILURES as error:
            cause = (error.cause if isinstance(error, ActivityError) else None) or error
            kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            raise RunError(
                f"{spec.name!r}: the router after node {router.source!r} raised {kind}: {cause}",
                graph=spec.name,
                node=router.source,
                state=state,
            ) from cause
