"""The orchestrator's durable side against a real server: start, signal, query, list, cancel,
terminate, idempotent ids, graphs run with ``engine="temporal"`` by ``run_worker``, and the
data converter its client and workers share."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError

from belugaflow import Orchestrator, RunError, load_config
from belugaflow.temporal import DevServer, PayloadTooLargeError, data_converter
from belugaflow.temporal._worker import run_worker

BIG = 3_000_000  # characters: over Temporal's 2 MiB payload limit once serialized


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


# --- the data converter ---


@contextlib.asynccontextmanager
async def serving(orch: Orchestrator) -> AsyncIterator[None]:
    """``run_worker(orch)`` as the CLI runs it: with the orchestrator's own client."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await worker


def connected(server: DevServer, **options: Any) -> Orchestrator:
    """An orchestrator that connects its own client to ``server``, on a fresh task queue."""
    return Orchestrator(
        temporal_address=server.address,
        temporal_namespace=server.namespace,
        workflow_task_queue=f"payloads-{uuid.uuid4().hex[:8]}",
        **options,
    )


async def test_client_guards_payload_size_by_default(temporal_server: DevServer) -> None:
    """Without a converter given, the client connects with the size guard: an oversized start
    argument fails in the client, before any RPC, with a message that names the remedy."""
    orch = connected(temporal_server)
    assert (await orch.client()).data_converter is orch.data_converter
    with pytest.raises(PayloadTooLargeError, match=r"configure the claim-check"):
        await orch.start_workflow(ApprovalWorkflow.run, "x" * BIG, id=f"big-{uuid.uuid4()}")


async def test_workers_share_the_size_guard(temporal_server: DevServer) -> None:
    """A worker run for the orchestrator uses its converter: a node whose update is too big
    fails the run at once, instead of being retried forever by Temporal."""
    orch = connected(temporal_server)
    calls: list[int] = []

    def big(state: Any) -> dict[str, Any]:
        calls.append(1)
        return {"text": "x" * BIG}

    graph = orch.create_graph("big", timeout=timedelta(seconds=30))
    graph.add_node("big", big).set_entry_point("big").set_finish_point("big")
    async with serving(orch):
        with pytest.raises(RunError, match="PayloadTooLargeError"):
            await asyncio.wait_for(orch.run(graph, {}, engine="temporal"), 30)
    assert calls == [1]


async def test_claim_check_configured_on_the_orchestrator(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    """``data_converter=data_converter(blob_dir=...)``: client and worker both store large
    payloads in the blob directory, and a 3 MB state goes through a durable run and back."""
    converter = data_converter(blob_dir=tmp_path / "blobs")
    assert Orchestrator.from_config(load_config(), data_converter=converter).data_converter is (
        converter
    )
    orch = connected(temporal_server, data_converter=converter)
    graph = orch.create_graph("big", timeout=timedelta(seconds=30))
    graph.add_node("big", lambda s: {"text": "x" * BIG}).set_entry_point("big")
    graph.set_finish_point("big")
    async with serving(orch):
        state: Any = await asyncio.wait_for(orch.run(graph, {}, engine="temporal"), 30)
    assert state == {"text": "x" * BIG}
    assert any(path.is_file() for path in (tmp_path / "blobs").rglob("*"))
