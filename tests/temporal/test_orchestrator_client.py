"""The orchestrator's durable side against a real server: start, signal, query, list, cancel,
terminate, idempotent ids, and graphs run with ``engine="temporal"`` by ``run_worker``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError

from belugaflow import Orchestrator
from belugaflow.temporal._worker import run_worker


@workflow.defn(name="ApprovalWorkflow")
class ApprovalWorkflow:
    """Waits for an ``approve`` signal; ``progress`` tells where it is."""

    def __init__(self) -> None:
        self.step = "waiting"
        self.approver: str | None = None

    @workflow.run
    async def run(self, order_id: str) -> str:
        await workflow.wait_condition(lambda: self.approver is not None)
        self.step = "done"
        return f"{order_id} approved by {self.approver}"

    @workflow.signal
    def approve(self, approver: str) -> None:
        self.approver = approver

    @workflow.query
    def progress(self) -> str:
        return self.step


@pytest.fixture
async def orch(temporal_client: Client) -> AsyncIterator[Orchestrator]:
    """An orchestrator with its own task queue and a worker polling it."""
    orch = Orchestrator(workflow_task_queue=f"orch-{uuid.uuid4().hex[:8]}", workflow_timeout=60)
    orch.use_client(temporal_client)
    orch.register_workflow(ApprovalWorkflow)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    yield orch
    stop.set()
    await worker


async def test_start_signal_query_result(orch: Orchestrator) -> None:
    """A started workflow answers queries, takes a signal and returns its result."""
    handle = await orch.start_workflow(ApprovalWorkflow.run, "o-1", id=f"o-1-{uuid.uuid4()}")
    assert handle.id and handle.run_id
    assert await handle.query("progress") == "waiting"
    await handle.signal("approve", "ada")
    assert await handle.result() == "o-1 approved by ada"
    assert await handle.query("progress") == "done"


async def test_same_id_is_one_run(orch: Orchestrator) -> None:
    """Starting the same id twice, running or finished, gives the first run's handle."""
    order = f"o-2-{uuid.uuid4()}"
    first = await orch.start_workflow(ApprovalWorkflow.run, "o-2", id=order)
    second = await orch.start_workflow(ApprovalWorkflow.run, "o-2", id=order)
    assert second.run_id == first.run_id
    await first.signal("approve", "bob")
    await first.result()
    third = await orch.start_workflow(ApprovalWorkflow.run, "o-2", id=order)
    assert third.run_id == first.run_id
    assert await third.result() == "o-2 approved by bob"
    with pytest.raises(WorkflowAlreadyStartedError):
        await orch.start_workflow(ApprovalWorkflow.run, "o-2", id=order, if_exists="fail")


async def test_list_cancel_terminate(orch: Orchestrator) -> None:
    """Running workflows are listed; cancel and terminate end them with those statuses."""
    ids = [f"o-3-{uuid.uuid4()}" for _ in range(2)]
    handles = [await orch.start_workflow(ApprovalWorkflow.run, "o-3", id=i) for i in ids]
    for _ in range(50):  # visibility is eventually consistent
        running = {w.id for w in await orch.list_workflows(status="running")}
        if set(ids) <= running:
            break
        await asyncio.sleep(0.1)
    assert set(ids) <= running
    await handles[0].cancel()
    with pytest.raises(WorkflowFailureError):
        await handles[0].result()
    await handles[1].terminate(reason="test")
    assert (await handles[0].describe()).status == WorkflowExecutionStatus.CANCELED
    assert (await handles[1].describe()).status == WorkflowExecutionStatus.TERMINATED
    with pytest.raises(ValueError, match="unknown status 'sleeping'"):
        await orch.list_workflows(status="sleeping")


async def test_graph_runs_on_temporal_through_the_orchestrator(orch: Orchestrator) -> None:
    """orch.run(graph, engine="temporal") gives the same state as the local engine."""
    graph = orch.create_graph("greet", timeout=timedelta(seconds=30))
    graph.add_node("hello", lambda s: {"text": f"hello {s['name']}"})
    graph.set_entry_point("hello").set_finish_point("hello")
    local: Any = await orch.run(graph, {"name": "ada"})
    durable: Any = await orch.run(graph, {"name": "ada"}, engine="temporal")
    assert durable == local == {"name": "ada", "text": "hello ada"}
    with pytest.raises(TypeError, match="engine='temporal' runs graphs"):
        await orch.run(orch.create_chain([str.upper]), "x", engine="temporal")
