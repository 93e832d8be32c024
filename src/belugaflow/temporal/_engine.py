"""Run graphs durably: the client side (``TemporalEngine``) and the worker side
(``graph_worker``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Literal

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError, TimeoutError, TimeoutType
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .._defaults import DEFAULTS
from .._errors import InputError, RunCancelledError, RunError, RunTimeoutError
from .._events import Hook
from .._schema import check
from ..graph import CompiledGraph, Graph, GraphSpec, Registry
from ..graph._board import RESOLVE
from ..graph._handle import check_signal, resolution
from ..resilience import BreakerRegistry
from ._activities import GraphActivities
from ._client import IfExists, start_once
from ._failures import restore_run_error
from ._messages import GraphInput
from ._workflow import Compiled, GraphWorkflow, NamedGraphWorkflow, WorkerContext, compile_spec

__all__ = ["DurableRun", "TemporalEngine", "graph_worker"]


def graph_worker(
    client: Client,
    *,
    task_queue: str,
    registry: Registry,
    breakers: BreakerRegistry | None = None,
    hooks: Sequence[Hook] = (),
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    heartbeat_timeout: float = DEFAULTS.heartbeat_timeout,
    **options: Any,
) -> Worker:
    """A worker for graphs — each graph compiled with ``registry`` under its own name as the
    workflow type, and any spec sent as ``belugaflow.graph`` whose callables ``registry``
    holds; nodes guarded by the circuit breakers in ``breakers`` — plus any hand-written
    ``workflows`` and ``activities``. The events of the runs and nodes it works on go to
    ``hooks``; named runs' nodes heartbeat within ``heartbeat_timeout`` seconds.

    Sync activities run in a thread pool; SIGTERM handling and draining are the caller's (see
    :func:`~belugaflow.temporal.run_worker`). ``options`` go to ``temporalio.worker.Worker``.
    """
    graph_activities = GraphActivities(registry, breakers, hooks)
    # Graphs by name: one dynamic workflow serves every graph of the registry, those added
    # later included (unless the app brings a dynamic workflow of its own).
    named = [] if any(_is_dynamic(w) for w in workflows) else [NamedGraphWorkflow]
    context = WorkerContext(tuple(hooks), _Served(registry), heartbeat_timeout)
    options["interceptors"] = [*options.pop("interceptors", ()), context.interceptor()]
    options.setdefault("activity_executor", ThreadPoolExecutor(max_workers=32))
    # belugaflow's workflow code is deterministic by construction (the scheduler is pure);
    # passing it through the sandbox shares the host's modules instead of re-importing them.
    options.setdefault(
        "workflow_runner",
        SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("belugaflow")
        ),
    )
    options.setdefault("graceful_shutdown_timeout", timedelta(seconds=30))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[GraphWorkflow, *named, *workflows],
        activities=[*graph_activities.activities, *activities],
        **options,
    )


def _is_dynamic(workflow: type) -> bool:
    definition = getattr(workflow, "__temporal_workflow_definition", None)
    return definition is not None and definition.name is None


class _Served(Mapping[str, Mapping[int, Compiled]]):
    """The graphs of a registry, compiled on first use: graphs added after the worker
    started are served too."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._compiled: dict[tuple[str, int], Compiled] = {}

    def __getitem__(self, name: str) -> Mapping[int, Compiled]:
        versions = self._registry.graphs[name]
        for version, spec in versions.items():
            if (name, version) not in self._compiled:
                self._compiled[name, version] = compile_spec(spec)
        return {version: self._compiled[name, version] for version in versions}

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.graphs)

    def __len__(self) -> int:
        return len(self._registry.graphs)


def _spec_of(graph: Graph | CompiledGraph | GraphSpec) -> GraphSpec:
    if isinstance(graph, GraphSpec):
        return graph
    return graph.compile().spec if isinstance(graph, Graph) else graph.spec


class TemporalEngine:
    """Runs graphs as workflows on a Temporal cluster.

    A graph of ``registry`` (one a worker of the same app serves) starts by name: the workflow
    type is the graph's name, the input the state, and the memo its name and version. Any
    other graph starts as ``belugaflow.graph`` with its spec in the input, so a worker needs
    only its callables. Either way a run finishes on the definition it started with.

    Args:
        client: A connected client.
        task_queue: Where the workers poll.
        heartbeat_timeout: Seconds a running node's worker may stay silent before the node is
            retried on another worker, for runs that carry their spec (a run by name uses its
            worker's).
        registry: The registry whose graphs the workers serve by name.
        execution_timeout: Seconds a run may take at most, when its graph has no timeout
            (``orchestration.workflow.timeout``).
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str = DEFAULTS.task_queue,
        heartbeat_timeout: float = DEFAULTS.heartbeat_timeout,
        registry: Registry | None = None,
        execution_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.heartbeat_timeout = heartbeat_timeout
        self.registry = registry
        self.execution_timeout = execution_timeout

    async def start(
        self,
        graph: Graph | CompiledGraph | GraphSpec,
        input: Mapping[str, Any],
        *,
        id: str | None = None,
        if_exists: IfExists = "use_existing",
    ) -> DurableRun:
        """Start a run of ``graph`` on ``input`` and return its handle.

        ``id`` (default: a fresh one) is the workflow id and an idempotency key: starting the
        same id again — a retry after a lost connection, say — returns the handle of the run
        that id started, running or finished (its ``created`` is False), and never starts a
        second one; with ``if_exists="fail"`` it raises ``WorkflowAlreadyStartedError``.

        Raises:
            InputError: ``input`` breaks the graph's input schema; nothing was sent.
        """
        spec = _spec_of(graph)
        state = dict(input)
        if spec.input_schema is not None:
            check(spec.input_schema, state, f"input of graph {spec.name!r}")
        timeout = spec.timeout or self.execution_timeout
        options: dict[str, Any] = {
            "task_queue": self.task_queue,
            "execution_timeout": timedelta(seconds=timeout) if timeout else None,
            "memo": {"graph": spec.name, "version": spec.version},
            # A worker in this process (same client) gets the first workflow task with the
            # start response, skipping a round trip through the task queue; else a no-op.
            "request_eager_start": True,
        }
        workflow: Any
        arg: Any
        if self._serves(spec):
            workflow, arg = spec.name, state
        else:
            workflow, arg = GraphWorkflow.run, GraphInput(spec=spec.to_dict(), state=state)
            if self.heartbeat_timeout != DEFAULTS.heartbeat_timeout:
                arg["heartbeat_timeout"] = self.heartbeat_timeout
        if id is None:
            handle = await self.client.start_workflow(
                workflow, arg, id=f"{spec.name}-{uuid.uuid4().hex}", **options
            )
            return DurableRun(handle, spec)
        # The caller's id is an idempotency key: again, it gets the same run.
        started = await start_once(
            self.client, workflow, arg, id=id, if_exists=if_exists, **options
        )
        return DurableRun(started.handle, spec, created=started.created)

    def _serves(self, spec: GraphSpec) -> bool:
        """Whether the workers serve ``spec`` by name (they hold this registry's graphs)."""
        if self.registry is None:
            return False
        return self.registry.graph(spec.name, spec.version) == spec

    async def run(
        self,
        graph: Graph | CompiledGraph | GraphSpec,
        input: Mapping[str, Any],
        *,
        id: str | None = None,
    ) -> dict[str, Any]:
        """Run ``graph`` on ``input`` durably and return the final state; ``id`` as for
        :meth:`start`.

        Raises:
            InputError: ``input`` breaks the graph's input schema; nothing was sent.
            RunError: the run failed, as the same subclass the local engine raises —
                :class:`~belugaflow.NodeFailedError` (the node's last error as ``__cause__``,
                its type in the message), :class:`~belugaflow.RouteError`,
                :class:`~belugaflow.StateConflictError`,
                :class:`~belugaflow.MaxStepsExceededError`,
                :class:`~belugaflow.WaitTimeoutError`, :class:`~belugaflow.RunTimeoutError`,
                :class:`~belugaflow.RunCancelledError` — with the partial ``state``; a plain
                ``RunError`` carrying Temporal's failure chain for anything else (the workflow
                was terminated, the spec was refused).
        """
        return await (await self.start(graph, input, id=id)).result()


class DurableRun:
    """A graph run on Temporal, driven as a :class:`~belugaflow.graph.LocalRun` is (see
    :class:`~belugaflow.RunHandle`). Any client can do the same by workflow id: signals and
    updates named after the graph's waits (and ``resolve``), the ``progress`` query."""

    def __init__(
        self, handle: WorkflowHandle[Any, Any], spec: GraphSpec, *, created: bool = True
    ) -> None:
        self.handle = handle
        self.spec = spec
        self.created = created
        """False when the start found its id already taken and this is that run's handle."""

    def __repr__(self) -> str:
        return f"<DurableRun {self.id!r} of {self.spec.name!r} v{self.spec.version}>"

    @property
    def id(self) -> str:
        return self.handle.id

    async def signal(self, name: str, value: Any = None) -> None:
        check_signal(self.spec, name, value)
        await self.handle.signal(name, value)

    async def update(self, name: str, value: Any = None) -> dict[str, Any]:
        check_signal(self.spec, name, value)
        try:
            result: dict[str, Any] = await self.handle.execute_update(name, value)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == "InputError":
                found = list(cause.details[0]) if cause.details else [cause.message]
                raise InputError(f"update {name!r} to run {self.id!r}", found) from None
            raise
        return result

    async def resolve(
        self,
        node: str | None,
        action: Literal["retry", "skip", "abort"],
        update: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self.update(RESOLVE, resolution(node, action, update))

    async def query(self, name: str = "progress") -> Any:
        return await self.handle.query(name)

    async def result(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.handle.result()
        except WorkflowFailureError as error:
            converted = _run_error(self.spec, self.id, error)
            raise converted from converted.__cause__
        return result

    async def cancel(self) -> None:
        await self.handle.cancel()


def _run_error(spec: GraphSpec, workflow_id: str, error: WorkflowFailureError) -> RunError:
    """The run error the local engine would raise, its cause chained."""
    cause: BaseException | None = error.cause
    converted: RunError
    if isinstance(cause, ApplicationError) and (restored := restore_run_error(cause)):
        converted, cause = restored, cause.cause  # the node's own error, for a failed node
    elif isinstance(cause, CancelledError):
        converted = RunCancelledError(
            f"{spec.name!r}: the run was cancelled", graph=spec.name, state={}
        )
    elif isinstance(cause, TimeoutError) and cause.type is TimeoutType.START_TO_CLOSE:
        # The workflow's execution timeout: the run's own timeout, as in process.
        converted = RunTimeoutError(
            graph=spec.name, timeout=spec.timeout or 0.0, node=None, state={}
        )
    else:
        converted = RunError(
            f"{spec.name!r}: workflow {workflow_id!r} failed: {_chain(error)}", graph=spec.name
        )
        cause = error
    converted.__cause__ = cause
    return converted


def _chain(error: BaseException) -> str:
    """``outer: inner: innermost`` messages of a Temporal failure chain."""
    parts = []
    current: BaseException | None = error.__cause__
    while current is not None:
        kind = getattr(current, "type", None) or type(current).__name__
        parts.append(f"{kind}: {current}")
        current = current.__cause__
    return " <- ".join(parts) or str(error)
