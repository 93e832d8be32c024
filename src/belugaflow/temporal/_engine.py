"""Run graphs durably: the client side (``TemporalEngine``) and the worker side
(``graph_worker``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .._errors import RunError
from ..graph import CompiledGraph, Graph, GraphSpec, Registry
from ..resilience import BreakerRegistry
from ._activities import GraphActivities
from ._messages import GraphInput
from ._workflow import GraphWorkflow

__all__ = ["TemporalEngine", "graph_worker"]


def graph_worker(
    client: Client,
    *,
    task_queue: str,
    registry: Registry,
    breakers: BreakerRegistry | None = None,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    **options: Any,
) -> Worker:
    """A worker for ``GraphWorkflow`` — running the nodes and routers of every graph whose
    callables ``registry`` holds — plus any hand-written ``workflows`` and ``activities``.

    Sync activities run in a thread pool; SIGTERM handling and draining are the caller's (see
    :func:`~belugaflow.temporal.run_worker`). ``options`` go to ``temporalio.worker.Worker``.
    """
    graph_activities = GraphActivities(registry, breakers)
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
    """

    def __init__(self, client: Client, *, task_queue: str = "beluga-workflows") -> None:
        self.client = client
        self.task_queue = task_queue

    async def run(
        self,
        graph: Graph | CompiledGraph | GraphSpec,
        input: Mapping[str, Any],
        *,
        id: str | None = None,
    ) -> dict[str, Any]:
        """Run ``graph`` on ``input`` durably and return the final state.

        Raises:
            RunError: the workflow failed; the message carries Temporal's failure chain.
        """
        spec = _spec_of(graph)
        workflow_id = id or f"{spec.name}-{uuid.uuid4().hex}"
        handle = await self.client.start_workflow(
            GraphWorkflow.run,
            GraphInput(spec=spec.to_dict(), state=dict(input)),
            id=workflow_id,
            task_queue=self.task_queue,
            execution_timeout=timedelta(seconds=spec.timeout) if spec.timeout else None,
            memo={"graph": spec.name, "version": spec.version},
            # A worker in this process (same client) gets the first workflow task with the
            # start response, skipping a round trip through the task queue; else a no-op.
            request_eager_start=True,
        )
        try:
            result: dict[str, Any] = await handle.result()
        except WorkflowFailureError as error:
            raise RunError(
                f"{spec.name!r}: workflow {workflow_id!r} failed: {_chain(error)}", graph=spec.name
            ) from error
        return result


def _chain(error: BaseException) -> str:
    """``outer: inner: innermost`` messages of a Temporal failure chain."""
    parts = []
    current: BaseException | None = error.__cause__
    while current is not None:
        kind = getattr(current, "type", None) or type(current).__name__
        parts.append(f"{kind}: {current}")
        current = current.__cause__
    return " <- ".join(parts) or str(error)
