"""Graphs by name, driven as a user without Python would: the official ``temporal`` CLI starts
``order-processing`` on a worker of the example app, queries its progress and signals its
review; a malformed input fails the run at once, naming the field; a run keeps its version when
the worker's graph changes while it waits; a waiting run survives its worker's SIGKILL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tests.temporal.cli import Cli
from tests.temporal.fault_app import StartWorker, worker_pool

from belugaflow import Orchestrator, Registry
from belugaflow.temporal import DevServer, graph_worker
from examples.order_processing import app
from examples.order_processing.db import Store
from examples.order_processing.graph import build_order_graph

WAIT = 20.0
APP = "examples.order_processing.app:orch"


@pytest.fixture
def cli(temporal_server: DevServer) -> Cli:
    return Cli(temporal_server)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return tmp_path / "orders.db"


@pytest.fixture
def workers(temporal_server: DevServer, tmp_path: Path, shop: Path) -> Iterator[StartWorker]:
    """Worker processes of the example app (``belugaflow worker --app ...``)."""
    with worker_pool(
        APP,
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=f"by-name-{uuid.uuid4().hex[:8]}",
        logs=tmp_path,
        env={app.DB_ENV: str(shop)},
    ) as start:
        yield start


async def until(check: Any) -> Any:
    """``await check()``'s first truthy answer, polled (the run is in another process)."""
    async with asyncio.timeout(WAIT):
        while True:
            if found := await check():
                return found
            await asyncio.sleep(0.1)


async def test_the_temporal_cli_drives_the_order_graph_by_name(
    cli: Cli, workers: StartWorker, temporal_client: Client, shop: Path
) -> None:
    worker = workers()
    order = {"order_id": "cli-1", "product_id": "prod-1", "quantity": 2, "review_threshold": 1000}
    workflow_id = f"cli-1-{uuid.uuid4().hex[:6]}"
    queue = worker.task_queue
    cli("workflow", "start", "--type", "order-processing", "--task-queue", queue,
        "--workflow-id", workflow_id, "--input", json.dumps(order))  # fmt: skip

    async def waiting() -> dict[str, Any] | None:
        progress = await asyncio.to_thread(cli.progress, workflow_id)
        return progress if progress["status"] == "waiting" else None

    progress = await until(waiting)
    assert progress["waiting"][0]["signal"] == "review"
    assert progress["completed"] == ["validate", "check_inventory", "decide"]

    cli("workflow", "signal", "--workflow-id", workflow_id, "--name", "review",
        "--input", '{"verdict": "maybe"}')  # fmt: skip

    async def dropped() -> dict[str, Any] | None:
        progress = await asyncio.to_thread(cli.progress, workflow_id)
        return progress if progress["dropped_signals"] else None

    progress = await until(dropped)
    assert progress["status"] == "waiting"
    assert "verdict: 'maybe' is not one of ['approve', 'reject']" in progress["dropped_signals"][0]

    refused = cli.run("workflow", "update", "execute", "--workflow-id", workflow_id,
                      "--name", "review", "--input", '{"verdict": "maybe"}')  # fmt: skip
    assert refused.returncode != 0  # the run's validator rejected it, to its sender
    assert "verdict: 'maybe' is not one of" in refused.stdout + refused.stderr

    cli("workflow", "signal", "--workflow-id", workflow_id, "--name", "review",
        "--input", '{"verdict": "approve", "note": "ok"}')  # fmt: skip
    handle = temporal_client.get_workflow_handle(workflow_id)
    state = await asyncio.wait_for(handle.result(), WAIT)
    assert state["status"] == "completed"
    description = await handle.describe()
    assert description.workflow_type == "order-processing"
    assert await description.memo() == {"graph": "order-processing", "version": 1}
    assert Store(shop).count("payments", "cli-1") == 1


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ({"order_id": "b-1", "product_id": "prod-1", "qty": 2}, "qty: unknown field"),
        ({"product_id": "prod-1"}, "order_id: missing (required)"),
        ({"order_id": "b-1", "product_id": "prod-1", "quantity": "2"}, "quantity: '2' is not"),
    ],
)
async def test_a_malformed_input_fails_the_run_at_once(
    cli: Cli, workers: StartWorker, temporal_client: Client, order: dict[str, Any], problem: str
) -> None:
    queue = workers().task_queue
    workflow_id = f"bad-{uuid.uuid4().hex[:6]}"
    cli("workflow", "start", "--type", "order-processing", "--task-queue", queue,
        "--workflow-id", workflow_id, "--input", json.dumps(order))  # fmt: skip
    handle = temporal_client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), WAIT)
    failure = caught.value.cause
    assert isinstance(failure, ApplicationError) and failure.type == "InputError"
    assert failure.non_retryable and problem in failure.message
    assert (await handle.describe()).status is WorkflowExecutionStatus.FAILED


def pinned_graph(registry: Registry, version: int) -> None:
    """``pinned`` waits for ``go``, then says which version ran it."""
    orch = Orchestrator()
    orch.registry = registry
    graph = orch.create_graph("pinned", version=version)
    graph.add_wait("wait", signal="go")
    graph.add_node(f"v{version}", lambda s: {"ran_version": version})
    graph.add_edge("wait", f"v{version}")
    graph.set_entry_point("wait").set_finish_point(f"v{version}").compile()


@pytest.mark.parametrize("started_by", ["temporal-cli", "belugaflow"])
async def test_a_run_finishes_on_the_version_it_started_on(
    cli: Cli, temporal_client: Client, started_by: str
) -> None:
    """Started while the worker served v1 (by a client that sets no memo, or by belugaflow,
    which does), the run still runs v1 once the next worker serves v1 and v2; a new run
    takes v2."""
    queue = f"pinned-{uuid.uuid4().hex[:8]}"
    old, new = Registry(), Registry()
    pinned_graph(old, 1)
    pinned_graph(new, 1)
    pinned_graph(new, 2)
    workflow_id = f"pinned-{uuid.uuid4().hex[:6]}"
    async with graph_worker(temporal_client, task_queue=queue, registry=old):
        if started_by == "temporal-cli":
            cli("workflow", "start", "--type", "pinned", "--task-queue", queue,
                "--workflow-id", workflow_id, "--input", "{}")  # fmt: skip
        else:
            orch = Orchestrator(workflow_task_queue=queue)
            orch.registry = old
            orch.use_client(temporal_client)
            spec = old.graphs["pinned"][1]
            from belugaflow.temporal import TemporalEngine

            engine = TemporalEngine(temporal_client, task_queue=queue, registry=old)
            await engine.start(spec, {}, id=workflow_id)
        handle = temporal_client.get_workflow_handle(workflow_id)

        async def waiting() -> bool:
            return bool((await handle.query("progress"))["status"] == "waiting")

        await until(waiting)
    async with graph_worker(temporal_client, task_queue=queue, registry=new):
        await handle.signal("go")
        assert await asyncio.wait_for(handle.result(), WAIT) == {"go": None, "ran_version": 1}
        fresh = await temporal_client.start_workflow("pinned", {}, id=f"{workflow_id}-2",
                                                     task_queue=queue)  # fmt: skip
        await fresh.signal("go")
        assert (await asyncio.wait_for(fresh.result(), WAIT))["ran_version"] == 2
    assert await (await handle.describe()).memo() == {"graph": "pinned", "version": 1}


async def test_a_run_waiting_for_review_survives_its_worker_being_killed(
    workers: StartWorker, temporal_server: DevServer, shop: Path
) -> None:
    first = workers()
    orch = Orchestrator(
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
        workflow_task_queue=first.task_queue,
    )
    graph = build_order_graph(orch, Store.create(shop))  # the app's graph: same name, version
    order = {"order_id": "k-1", "product_id": "prod-2", "quantity": 3, "customer_tier": "gold"}
    handle = await orch.start(graph, order, engine="temporal")

    async def waiting() -> bool:
        return bool((await handle.query("progress"))["status"] == "waiting")

    await until(waiting)
    first.kill()  # SIGKILL: nothing drains, nothing is said to the server
    workers()
    await handle.signal("review", {"verdict": "approve"})
    state = await asyncio.wait_for(handle.result(), WAIT)
    assert state["status"] == "completed"
    store = Store(shop)
    assert store.count("payments", "k-1") == 1 and store.count("fulfillments", "k-1") == 1
