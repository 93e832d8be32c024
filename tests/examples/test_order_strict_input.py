"""``OrderProcessingWorkflow`` refuses bad input as a user of the ``temporal`` CLI meets it, with
a worker of the example's app (``create_app``, as ``belugaflow worker --app`` runs it): a
misspelled, missing or mistyped field fails the run at once naming the field (it used to charge
quantity 1, or retry a workflow task for ever); a malformed signal is dropped and shown in
``progress``; belugaflow's own start refuses such an input before sending it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from tests.temporal.cli import Cli
from typer.testing import CliRunner

from belugaflow import InputError, Orchestrator, load_config
from belugaflow.cli import app as cli_app
from belugaflow.temporal import DevServer, run_worker, workflow_schema
from examples.order_processing import app
from examples.order_processing.activities import default_decide
from examples.order_processing.db import Store
from examples.order_processing.graph import GRAPH_NAME
from examples.order_processing.workflow import OrderProcessingWorkflow

WAIT = 20.0
FAST = 5.0
"""Seconds within which a malformed order must have failed (it used to stay Running)."""
APP = "examples.order_processing.app:orch"


@pytest.fixture
def cli(temporal_server: DevServer) -> Cli:
    return Cli(temporal_server)


@pytest.fixture
async def shop(temporal_server: DevServer, store: Store, queue: str) -> AsyncIterator[Client]:
    """A worker of the example's app on ``queue`` (its config.yaml, the rule deciding, the
    test's store); yields the app's own client, with its data converter."""
    orch = app.create_app(load_config(app.CONFIG), store=store, decide=default_decide)
    orch.temporal_address = temporal_server.address
    orch.workflow_task_queue = queue
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    yield await orch.client()
    stop.set()
    await worker


def start(cli: Cli, queue: str, *input: str) -> str:
    """Start ``OrderProcessingWorkflow`` with the CLI, one ``--input`` per JSON text."""
    workflow_id = f"strict-{uuid.uuid4().hex[:8]}"
    inputs = [arg for text in input for arg in ("--input", text)]
    cli("workflow", "start", "--type", "OrderProcessingWorkflow", "--task-queue", queue,
        "--workflow-id", workflow_id, *inputs)  # fmt: skip
    return workflow_id


async def until(cli: Cli, workflow_id: str, check: Any) -> dict[str, Any]:
    """The run's progress (asked through the CLI) once ``check`` holds for it."""
    async with asyncio.timeout(WAIT):
        while True:
            progress = await asyncio.to_thread(cli.progress, workflow_id)
            if check(progress):
                return progress
            await asyncio.sleep(0.1)


async def task_failures(handle: WorkflowHandle[Any, Any]) -> int:
    """Workflow tasks of the run that failed: each would be retried, the run stuck Running."""
    return sum(
        [
            event.HasField("workflow_task_failed_event_attributes")
            async for event in handle.fetch_history_events()
        ]
    )


def order(**fields: Any) -> str:
    return json.dumps({"order_id": "s-1", "product_id": "prod-1", **fields})


@pytest.mark.parametrize(
    ("input", "problem"),
    [
        ([order(qty=2)], "qty: unknown field"),
        ([json.dumps({"product_id": "prod-1", "quantity": 2})], "order_id: missing (required)"),
        ([order(quantity="2")], "quantity: '2' is not of type 'integer'"),
        ([order(steps={"max_attempts": "x"})], "steps.max_attempts: 'x' is not of type 'integer'"),
        (["null"], "the value: None is not of type 'object'"),
        ([], "expected one JSON object (the order), got 0"),
        ([order(), order()], "expected one JSON object (the order), got 2"),
    ],
    ids=["misspelled", "missing", "mistyped", "nested", "null", "no-input", "two-inputs"],
)
async def test_a_malformed_order_fails_the_run_at_once(
    cli: Cli, shop: Client, store: Store, queue: str, input: list[str], problem: str
) -> None:
    handle = shop.get_workflow_handle(start(cli, queue, *input))
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), FAST)
    assert cli.status(handle.id) == "FAILED"
    failure = caught.value.cause
    assert isinstance(failure, ApplicationError)
    assert failure.type == "InputError" and failure.non_retryable
    assert failure.message.startswith("input of OrderProcessingWorkflow is invalid:")
    assert f"  - {problem}" in failure.message.splitlines()
    assert failure.details == ([problem],)
    assert await task_failures(handle) == 0
    assert store.count("reservations", "s-1") == store.count("payments", "s-1") == 0
    assert store.in_stock("prod-1") == 10


async def test_a_valid_order_from_the_cli_completes(
    cli: Cli, shop: Client, store: Store, queue: str
) -> None:
    """A plain order, without ``steps``, as a client outside Python sends it."""
    workflow_id = start(cli, queue, order(quantity=2))
    result = await asyncio.wait_for(shop.get_workflow_handle(workflow_id).result(), WAIT)
    assert result["status"] == "completed"
    assert cli.status(workflow_id) == "COMPLETED"
    assert store.count("payments", "s-1") == 1
    assert store.in_stock("prod-1") == 8  # the quantity asked for, not the default 1


async def test_a_malformed_signal_is_dropped_and_the_run_keeps_waiting(
    cli: Cli, shop: Client, store: Store, queue: str
) -> None:
    workflow_id = start(cli, queue, order(quantity=2, review_threshold=1000))
    await until(cli, workflow_id, lambda p: p["step"] == "await_approval")
    signal = ("workflow", "signal", "--workflow-id", workflow_id)
    cli(*signal, "--name", "approve", "--input", '{"x": 1}')
    cli(*signal, "--name", "reject", "--input", '"a"', "--input", '"b"')
    progress = await until(cli, workflow_id, lambda p: len(p["dropped_signals"]) == 2)
    assert progress["step"] == "await_approval"
    assert progress["dropped_signals"] == [
        "signal 'approve': the value: {'x': 1} is not of type 'string'",
        "signal 'reject': expected at most one value (a string), got 2",
    ]
    cli(*signal, "--name", "approve", "--input", '"looks fine"')
    result = await asyncio.wait_for(shop.get_workflow_handle(workflow_id).result(), WAIT)
    assert result["status"] == "completed" and store.count("payments", "s-1") == 1
    assert await task_failures(shop.get_workflow_handle(workflow_id)) == 0


async def test_belugaflow_refuses_a_malformed_start_before_sending_it(
    temporal_client: Client, queue: str
) -> None:
    orch = Orchestrator(workflow_task_queue=queue)
    orch.use_client(temporal_client)
    orch.register_workflow(OrderProcessingWorkflow)
    with pytest.raises(InputError, match="qty: unknown field"):
        await orch.start_workflow(
            OrderProcessingWorkflow.run, {"order_id": "s-4", "product_id": "p", "qty": 2}, id="s-4"
        )
    with pytest.raises(Exception, match="not found"):
        await temporal_client.get_workflow_handle("s-4").describe()


def test_the_workflow_publishes_its_schema() -> None:
    schema = workflow_schema(OrderProcessingWorkflow)
    assert schema["workflow_type"] == "OrderProcessingWorkflow" and schema["kind"] == "workflow"
    assert schema["input"]["required"] == ["order_id", "product_id"]
    assert schema["input"]["additionalProperties"] is False
    assert "steps" in schema["input"]["properties"]
    assert schema["signals"] == {"approve": {"type": "string"}, "reject": {"type": "string"}}
    assert schema["updates"] == {}
    assert set(schema["queries"]) == {"progress"}
    assert "dropped_signals" in schema["queries"]["progress"]["properties"]
    assert schema["result"]["required"] == ["order_id", "status"]
    orch = Orchestrator()
    orch.register_workflow(OrderProcessingWorkflow)
    assert orch.schemas()["OrderProcessingWorkflow"] == schema


def test_the_cli_prints_the_schemas_of_the_apps_workflows(tmp_path: Path) -> None:
    """``belugaflow workflows schema TYPE --app ...`` for the hand-written workflow and the
    graph of the use case's app."""
    runner = CliRunner()
    env = {app.DB_ENV: str(tmp_path / "orders.db")}
    for workflow_type, kind in (("OrderProcessingWorkflow", "workflow"), (GRAPH_NAME, "graph")):
        result = runner.invoke(
            cli_app, ["workflows", "schema", workflow_type, "--app", APP], env=env
        )
        assert result.exit_code == 0, result.output
        schema = json.loads(result.stdout)
        assert (schema["workflow_type"], schema["kind"]) == (workflow_type, kind)
        assert schema["input"]["required"] == ["order_id", "product_id"]
