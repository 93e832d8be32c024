"""``GraphWorkflow``: runs any :class:`~belugaflow.graph.GraphSpec` durably.

The workflow drives the same :class:`~belugaflow.graph._scheduler.Scheduler` as the local engine
— same joins, skips, loops, reducers and conflict checks — and runs every node and router as an
activity. The scheduler is pure (no I/O, no clock, no randomness), so it is deterministic under
replay: a run's decisions depend only on the activity results recorded in its history, never on
which activity finished first in wall-clock time.

Two workflow types share this machinery: ``belugaflow.graph`` takes the whole spec in its input
(any graph whose callables the worker holds), and :class:`NamedGraphWorkflow` serves the graphs
a worker registered under their own names (``order-processing``), its input being the state
alone. A named run keeps the version it started on: the one in its memo (belugaflow's starts put
it there), else the newest the worker served when it started, recorded in its history.

A run waits (wait nodes, parked nodes) in workflow code, holding no worker slot; signals and
updates of any name reach its :class:`~belugaflow.graph._board.RunBoard`, and ``progress``
reads it. Cancelling the run lets the nodes running end, then runs the compensations.

Events: the run's start, end and skipped nodes come from here, to the hooks of the worker that
runs the workflow (:class:`WorkerContext`), and only while the workflow is not replaying
history; node events come from the activities.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from .._defaults import DEFAULTS
    from .._errors import InputError, RunError, SpecError
    from .._events import EventKind, Hook, RunEvents
    from .._schema import problems
    from ..graph import GraphSpec
    from ..graph._board import RunBoard, park_or_fail, wait
    from ..graph._local import emit_skips
    from ..graph._plan import COMPENSATION_RETRY, resolve_reducers
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
    from ._observed import ObservedActivities, observe_workflow

__all__ = ["GraphWorkflow", "NamedGraphWorkflow", "WorkerContext"]

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


class Compiled(NamedTuple):
    """What a run of one spec needs, derived once per worker: everything is only read."""

    spec: GraphSpec
    topology: Topology
    reducers: dict[str, Reducer]
    nodes: tuple[_Node, ...]


def compile_spec(spec: GraphSpec) -> Compiled:
    """A spec's topology, reducers and node options.

    Raises:
        SpecError: a reducer is not built in (a durable spec names only built-in ones).
    """
    found: list[str] = []
    reducers = resolve_reducers(spec, None, found)
    if found:
        raise SpecError(f"graph {spec.name!r}", found)
    run_limit = timedelta(seconds=spec.timeout) if spec.timeout else NO_LIMIT
    nodes = []
    for node in spec.nodes:
        retry = node.retry if node.retry is not None else spec.retry
        limit = timedelta(seconds=node.timeout * 1.1 + 1) if node.timeout else run_limit
        nodes.append(_Node(retry, retry.to_temporal(), limit))
    return Compiled(spec, Topology.of(spec), reducers, tuple(nodes))


@functools.lru_cache(maxsize=256)
def _compile(spec_json: str) -> Compiled:
    """:func:`compile_spec` of a spec that came in a run's input, once per distinct content
    (not name and version: a changed spec that kept its version is never confused with the
    old one)."""
    return compile_spec(GraphSpec.from_dict(json.loads(spec_json)))


@dataclass(frozen=True)
class WorkerContext:
    """What the graph workflows on one worker see: its hooks, the graphs it serves by name
    (name -> version -> compiled spec) and its heartbeat timeout."""

    hooks: tuple[Hook, ...] = ()
    graphs: Mapping[str, Mapping[int, Compiled]] = field(default_factory=dict)
    heartbeat_timeout: float = DEFAULTS.heartbeat_timeout

    def interceptor(self) -> Interceptor:
        """The worker interceptor that hands this context to every workflow run."""
        context = self

        class _Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                _context.set(context)  # this run's task (and the tasks it creates) sees it
                if not context.hooks or issubclass(input.type, _GraphRun):
                    return await super().execute_workflow(input)
                # A hand-written workflow: its run events come from here.
                return await observe_workflow(
                    context.hooks, lambda: super(_Inbound, self).execute_workflow(input)
                )

        class _Interceptor(Interceptor):
            def workflow_interceptor_class(
                self, input: WorkflowInterceptorClassInput
            ) -> type[WorkflowInboundInterceptor]:
                return _Inbound

            def intercept_activity(
                self, next: ActivityInboundInterceptor
            ) -> ActivityInboundInterceptor:
                return ObservedActivities(next, context.hooks) if context.hooks else next

        return _Interceptor()


_context: ContextVar[WorkerContext | None] = ContextVar("belugaflow_worker", default=None)
_NO_CONTEXT = WorkerContext()


def _worker() -> WorkerContext:
    return _context.get() or _NO_CONTEXT


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


async def _until(predicate: Callable[[], bool], seconds: float | None) -> bool:
    """Wait in workflow code (a durable timer for the timeout): True once ``predicate``
    holds, False when the timeout passed first."""
    try:
        await workflow.wait_condition(predicate, timeout=seconds)
    except TimeoutError:
        return False
    return True


def _decode(args: Sequence[RawValue]) -> Any:
    """The one argument of a dynamic signal, update or run (None without one)."""
    if not args:
        return None
    return workflow.payload_converter().from_payload(args[0].payload)


def _refusal(subject: str, found: list[str]) -> ApplicationError:
    return ApplicationError(
        str(InputError(subject, found)), found, type="InputError", non_retryable=True
    )


class _GraphRun:
    """The machinery both graph workflow types share: driving the scheduler, waits, parking,
    compensation, and the handlers every run answers."""

    def __init__(self) -> None:
        self._board: RunBoard | None = None
        self._state: dict[str, Any] = {}
        self._early: list[tuple[str, Any]] = []  # signals that came before the board
        self._early_dropped: list[str] = []

    @workflow.query(name="progress")
    def progress(self) -> dict[str, Any]:
        """Status, running / waiting / parked / completed nodes, dropped signals, and a
        summary of the state."""
        if self._board is None:
            return {"status": "starting"}
        return self._board.progress(self._state)

    @workflow.signal(dynamic=True)
    def deliver(self, name: str, args: Sequence[RawValue]) -> None:
        """A value for a wait node, or an operator's ``resolve``; a bad one is dropped and
        recorded in ``progress``."""
        try:
            value = _decode(args)
        except Exception as error:  # a payload this worker cannot read: record, don't fail
            self._dropped(name, f"value could not be decoded: {error}")
            return
        if self._board is None:
            self._early.append((name, value))
        else:
            self._board.signal(name, value)

    @workflow.update(dynamic=True)
    def submit(self, name: str, args: Sequence[RawValue]) -> dict[str, Any]:
        """As the signal, but a value the run refuses is rejected to its sender; returns the
        run's progress."""
        assert self._board is not None  # the validator refused the update otherwise
        self._board.signal(name, _decode(args))
        return self._board.progress(self._state)

    @submit.validator
    def _check(self, name: str, args: Sequence[RawValue]) -> None:
        if self._board is None:
            raise ApplicationError("the run is starting; send the update again", type="NotReady")
        found = self._board.signal_problems(name, _decode(args))
        if found:
            raise _refusal(f"update {name!r}", found)

    def _dropped(self, name: str, why: str) -> None:
        dropped = self._board.dropped if self._board is not None else self._early_dropped
        dropped.append(f"signal {name!r}: {why}")

    async def _execute(
        self, compiled: Compiled, state: dict[str, Any], heartbeat: timedelta
    ) -> dict[str, Any]:
        spec, topology, reducers, nodes = compiled
        hooks = _worker().hooks
        events = (
            _LiveEvents(hooks, spec.name, workflow.info().workflow_id, "temporal")
            if hooks
            else None
        )
        sched = Scheduler(topology, reducers, state, record_skips=bool(hooks))
        self._state = sched.state
        board = self._board = RunBoard(spec, events)
        board.dropped.extend(self._early_dropped)
        for name, value in self._early:
            board.signal(name, value)
        if events is not None:
            events(EventKind.RUN_STARTED, state=dict(sched.state))
        try:
            result = await _Drive(spec, sched, nodes, heartbeat, events, board).run()
        except RunError as error:
            board.status = "failed"
            error.state = dict(sched.state)
            if events is not None:
                events(EventKind.RUN_FAILED, error=error, state=error.state, duration=_elapsed())
            raise run_failure(error) from error.__cause__
        except asyncio.CancelledError:
            board.status = "cancelled"
            if events is not None:
                events(EventKind.RUN_CANCELLED, state=dict(sched.state), duration=_elapsed())
            raise
        board.status = "completed"
        if events is not None:
            events(EventKind.RUN_COMPLETED, state=result, duration=_elapsed())
        return result


@workflow.defn(name="belugaflow.graph", sandboxed=False)
class GraphWorkflow(_GraphRun):
    """Run a graph spec that comes in the input on the input's state; return the final state."""

    @workflow.run
    async def run(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """``input`` is a :class:`~belugaflow.temporal._messages.GraphInput`."""
        try:
            compiled = _compile(json.dumps(input["spec"], sort_keys=True))
        except SpecError as error:  # fails the run for good, never a workflow-task retry
            raise ApplicationError(str(error), type="SpecError", non_retryable=True) from error
        heartbeat = input.get("heartbeat_timeout", DEFAULTS.heartbeat_timeout)
        return await self._execute(compiled, dict(input["state"]), timedelta(seconds=heartbeat))


VERSION_MARK = "belugaflow.graph-version."
"""A named run started without a version in its memo records the one it takes as a patch
marker ``belugaflow.graph-version.<n>``, which replay finds again."""


@workflow.defn(dynamic=True, sandboxed=False)
class NamedGraphWorkflow(_GraphRun):
    """Serves every graph the worker registered, under the graph's own name as the workflow
    type; the input is the initial state."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        context = _worker()
        name = workflow.info().workflow_type
        versions = context.graphs.get(name)
        if not versions:  # a deployment problem: a workflow-task failure, retried elsewhere
            served = ", ".join(map(repr, context.graphs)) or "none"
            raise RuntimeError(
                f"this worker serves no workflow type {name!r} (its graphs: {served});"
                " is it running the same code as the client?"
            )
        compiled = _pinned(name, versions)
        try:
            state = _decode(args)
        except Exception as error:
            raise _refusal(f"input of graph {name!r}", [f"undecodable: {error}"]) from None
        if state is None:
            state = {}
        if not isinstance(state, dict):
            found = [f"the value: expected an object of state, got {type(state).__name__}"]
            raise _refusal(f"input of graph {name!r}", found)
        schema = compiled.spec.input_schema
        if schema is not None and (found := problems(schema, state)):
            raise _refusal(f"input of graph {name!r}", found)
        return await self._execute(compiled, state, timedelta(seconds=context.heartbeat_timeout))


def _pinned(name: str, versions: Mapping[int, Compiled]) -> Compiled:
    """The version this run runs on, the same on every replay: its memo's, else the newest
    served when the run started (recorded as a marker the first time)."""
    version = workflow.memo_value("version", None)
    if version is None:
        for candidate in sorted(versions, reverse=True):
            if workflow.patched(f"{VERSION_MARK}{candidate}"):
                version = candidate
                workflow.upsert_memo({"graph": name, "version": version})
                break
    if not isinstance(version, int) or version not in versions:
        served = ", ".join(map(str, sorted(versions)))
        raise RuntimeError(
            f"run of {name!r} started on version {version}, and this worker serves versions"
            f" {served}; keep a version registered until its runs have ended"
        )
    return versions[version]


class _Drive:
    """One run's scheduling loop in workflow code: nodes and routers as activities, waits and
    parked nodes in workflow code."""

    def __init__(
        self,
        spec: GraphSpec,
        sched: Scheduler,
        nodes: tuple[_Node, ...],
        heartbeat: timedelta,
        events: RunEvents | None,
        board: RunBoard,
    ) -> None:
        self.spec = spec
        self.sched = sched
        self.nodes = nodes
        self.heartbeat = heartbeat
        self.events = events
        self.board = board
        self.running: dict[asyncio.Task[Any], int] = {}
        self.started: list[int] = []  # nodes with a compensation that started, in order

    async def run(self) -> dict[str, Any]:
        try:
            return await self._loop()
        except RunError:
            if self.started:
                await self._compensate()
            raise
        except asyncio.CancelledError:  # Temporal delivers a cancellation once: undo, re-raise
            await self._compensate()
            raise

    async def _loop(self) -> dict[str, Any]:
        spec, sched, board = self.spec, self.sched, self.board
        topo = sched.topo
        limit = spec.max_workers if spec.parallel else 1
        ready = sched.ready
        running = self.running
        waits = 0  # wait nodes hold no worker slot
        while True:
            while ready and len(running) - waits < limit:
                i = ready.popleft()
                if not sched.start(i):
                    continue
                node = spec.nodes[i]
                if node.compensate is not None:
                    self.started.append(i)
                task: asyncio.Task[Any]
                if node.wait is not None:
                    waits += 1
                    task = asyncio.create_task(wait(board, node, _until, workflow.now()))
                elif node.on_failure == "park":
                    task = asyncio.create_task(self._parkable(i, sched.steps))
                else:  # the activity's own handle: no task of ours around it
                    task = self._start(i, f"{sched.steps}:{node.name}")
                running[task] = i
                board.running.append(topo.names[i])
            if not running:
                return sched.state
            done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=running.__getitem__):  # node order: replay-stable
                i = running.pop(task)
                board.running.remove(topo.names[i])
                board.completed.append(topo.names[i])
                try:
                    update = task.result()
                except NODE_FAILURES as error:
                    failed = node_failure(spec.name, topo.names[i], self.nodes[i].retry, error)
                    raise failed from failed.__cause__
                if spec.nodes[i].wait is not None:
                    waits -= 1
                    if not sched.receive(i, update):  # timed out, took its on_timeout route
                        if self.events is not None:
                            emit_skips(sched, self.events)
                        continue
                else:
                    if isinstance(update, dict) and SUBGRAPH_TAG in update:
                        update = SubgraphUpdate(*update[SUBGRAPH_TAG])
                    sched.merge(i, update)
                chosen = None
                if topo.routes[i] is not None:
                    chosen = sched.route(i, await self._route(i))
                sched.finish(i, chosen)
                if self.events is not None:
                    emit_skips(sched, self.events)

    def _start(self, i: int, activity_id: str) -> workflow.ActivityHandle[Any]:
        """Start node ``i``'s activity (``activity_id`` is readable in the UI, and unique
        across loops and retries)."""
        node = self.spec.nodes[i]
        return self._activity(self._call(i, node.ref), self.nodes[i], activity_id, node.short)

    async def _parkable(self, i: int, step: int) -> Any:
        """Node ``i``'s update; once its attempts are used up, it waits for its operator."""
        node = self.spec.nodes[i]
        activity_id = f"{step}:{node.name}"
        round = 0
        while True:
            try:
                return await self._start(i, activity_id)
            except NODE_FAILURES as error:
                failed = node_failure(self.spec.name, node.name, self.nodes[i].retry, error)
            resolution = await park_or_fail(self.board, node.name, failed, _until)
            if resolution.action == "skip":
                return resolution.update
            round += 1
            activity_id = f"{step}:{node.name}:retry-{round}"

    def _call(self, i: int, ref: str, suffix: str = "") -> NodeCall:
        """What node ``i``'s activity gets (keys set only when needed: every call is light)."""
        node = self.spec.nodes[i]
        call = NodeCall(
            graph=self.spec.name,
            node=node.name + suffix,
            ref=ref,
            state=dict(self.sched.state),
            blocking=node.blocking,
        )
        if node.timeout is not None:
            call["timeout"] = node.timeout
        if node.breaker is not None and not suffix:
            call["breaker"] = node.breaker
        return call

    def _activity(
        self, call: NodeCall, options: _Node, activity_id: str, short: bool
    ) -> workflow.ActivityHandle[Any]:
        if short:
            return workflow.start_local_activity(
                NODE_ACTIVITY,
                call,
                start_to_close_timeout=options.attempt_limit,
                retry_policy=options.temporal_retry,
                activity_id=activity_id,
            )
        heartbeat = self.heartbeat
        return workflow.start_activity(
            NODE_ACTIVITY,
            call,
            start_to_close_timeout=options.attempt_limit,
            heartbeat_timeout=heartbeat if heartbeat < options.attempt_limit else None,
            retry_policy=options.temporal_retry,
            activity_id=activity_id,
        )

    async def _compensate(self) -> None:
        """Let the nodes running end (waits and parked nodes are dropped), then undo every node
        that started, newest first."""
        nodes = self.spec.nodes
        for task, i in self.running.items():
            if nodes[i].wait is not None or nodes[i].name in self.board.parked:
                task.cancel()
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)
        self.running.clear()
        for i in reversed(self.started):
            undo = nodes[i].compensate
            assert undo is not None
            options = self.nodes[i]._replace(
                retry=COMPENSATION_RETRY, temporal_retry=COMPENSATION_RETRY.to_temporal()
            )
            call = self._call(i, undo, ".compensate")
            try:
                await self._activity(call, options, f"undo:{nodes[i].name}", False)
            except NODE_FAILURES as error:  # a non-retryable error: the undo cannot be done
                failed = node_failure(self.spec.name, call["node"], options.retry, error)
                raise failed from failed.__cause__

    async def _route(self, i: int) -> Any:
        spec = self.spec
        router = next(r for r in spec.routers if r.source == spec.nodes[i].name)
        state = self.sched.state
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
