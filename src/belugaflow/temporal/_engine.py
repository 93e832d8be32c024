"""Run graphs durably: the client side (``TemporalEngine``) and the worker side
(``graph_worker``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, TimeoutError, TimeoutType
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .._defaults import DEFAULTS
from .._errors import RunError, RunTimeoutError
from .._events import Hook
from ..graph import CompiledGraph, Graph, GraphSpec, Registry
from ..resilience import BreakerRegistry
from ._activities import GraphActivities
from ._client import start_workflow
from ._failures import restore_run_error
from ._messages import GraphInput
from ._workflow import EventsInterceptor, GraphWorkflow

__all__ = ["TemporalEngine", "graph_worker"]


def graph_worker(
    client: Client,
    *,
    task_queue: str,
    registry: Registry,
    breakers: BreakerRegistry | None = None,
    hooks: Sequence[Hook] = (),
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    **options: Any,
) -> Worker:
    """A worker for ``GraphWorkflow`` — running the nodes and routers of every graph whose
    callables ``registry`` holds, guarded by the circuit breakers in ``breakers`` — plus any
    hand-written ``workflows`` and ``activities``. The events of the runs and nodes it works on
    go to ``hooks``.

    Sync activities run in a thread pool; SIGTERM handling and draining are the caller's (see
    :func:`~belugaflow.temporal.run_worker`). ``options`` go to ``temporalio.worker.Worker``.
    """
    graph_activities = GraphActivities(registry, breakers, hooks)
    if hooks:  # without hooks, no interceptor: workflows pay nothing
        interceptors = [*options.pop("interceptors", ()), EventsInterceptor(hooks)]
        options["interceptors"] = interceptors
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
        workflows=[GraphWorkflow, *workflows],
        activities=[*graph_activities.activities, *activities],
        **options,
    )


def _spec_of(graph: Graph | CompiledGraph | GraphSpec) -> GraphSpec:
    if isinstance(graph, GraphSpec):
        return graph
    return graph.compile().spec if isinstance(graph, Graph) else graph.spec


class TemporalEngine:
    """Runs graphs as ``GraphWorkflow`` executions on a Temporal cluster.

    The spec travels as workflow input, so a worker needs only the callables (the same
    registry keys), and a run finishes on the definition it started with.

    Args:
        client: A connected client.
        task_queue: Where the workers poll.
        heartbeat_timeout: Seconds a running node's worker may stay silent before the node is
            retried on another worker.
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str = DEFAULTS.task_queue,
        heartbeat_timeout: float = DEFAULTS.heartbeat_timeout,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.heartbeat_timeout = heartbeat_timeout

    async def run(
        self,
        graph: Graph | CompiledGraph | GraphSpec,
        input: Mapping[str, Any],
        *,
        id: str | None = None,
    ) -> dict[str, Any]:
        """Run ``graph`` on ``input`` durably and return the final state.

        ``id`` (default: a fresh one) is the workflow id and an idempotency key: running the
        same id again — a retry after a lost connection, say — returns the result of the run
        that id started, running or finished, and never starts a second one.

        Raises:
            RunError: the run failed, as the same subclass the local engine raises —
                :class:`~belugaflow.NodeFailedError` (the node's last error as ``__cause__``,
                its type in the message), :class:`~belugaflow.RouteError`,
                :class:`~belugaflow.StateConflictError`,
                :class:`~belugaflow.MaxStepsExceededError`,
                :class:`~belugaflow.RunTimeoutError` — with the partial ``state``; a plain
                ``RunError`` carrying Temporal's failure chain for anything else (the workflow
                was cancelled or terminated, the spec was refused).
        """
        spec = _spec_of(graph)
        workflow_id = id or f"{spec.name}-{uuid.uuid4().hex}"
        run = GraphInput(spec=spec.to_dict(), state=dict(input))
        if self.heartbeat_timeout != DEFAULTS.heartbeat_timeout:
            run["heartbeat_timeout"] = self.heartbeat_timeout
        options: dict[str, Any] = {
            "task_queue": self.task_queue,
            "execution_timeout": timedelta(seconds=spec.timeout) if spec.timeout else None,
            "memo": {"graph": spec.name, "version": spec.version},
            # A worker in this process (same client) gets the first workflow task with the
            # start response, skipping a round trip through the task queue; else a no-op.
            "request_eager_start": True,
        }
        if id is None:
            handle = await self.client.start_workflow(
                GraphWorkflow.run, run, id=workflow_id, **options
            )
        else:  # the caller's id is an idempotency key: again, it awaits the same run
            handle = await start_workflow(self.client, GraphWorkflow.run, run, id=id, **options)
        try:
            result: dict[str, Any] = await handle.result()
        except WorkflowFailureError as error:
            converted = _run_error(spec, workflow_id, error)
            raise converted from converted.__cause__
        return result


def _run_error(spec: GraphSpec, workflow_id: str, error: WorkflowFailureError) -> RunError:
    """The run error the local engine would raise, its cause chained."""
    cause: BaseException | None = error.cause
    converted: RunError
    if isinstance(cause, ApplicationError) and (restored := restore_run_error(cause)):
        converted, cause = restored, cause.cause  # the node's own error, for a failed node
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
