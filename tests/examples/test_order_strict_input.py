"""``OrderProcessingWorkflow`` refuses bad input as a user of the ``temporal`` CLI meets it: a
misspelled, missing or mistyped field fails the run at once naming the field (it used to charge
quantity 1, or retry a workflow task for ever); a malformed signal is dropped and shown in
``progress``; belugaflow's own start refuses such an input before sending it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tests.temporal.cli import Cli
from typer.testing import CliRunner

from belugaflow import InputError, Orchestrator
from belugaflow.cli import app as cli_app
from belugaflow.temporal import DevServer, workflow_schema
from examples.order_processing import app
from examples.order_processing.db import Store
from examples.order_processing.graph import GRAPH_NAME
from examples.order_processing.workflow import OrderProcessingWorkflow, order_worker

WAIT = 20.0
APP = "examples.order_processing.app:orch"


@pytest.fixture
def cli(temporal_server: DevServer) -> Cli:
    return Cli(temporal_server)


def start(cli: Cli, queue: str, order: dict[str, Any]) -> str:
    workflow_id = f"strict-{uuid.uuid4().hex[:8]}"
    cli("workflow", "start", "--type", "OrderProcessingWorkflow", "--task-queue", queue,
        "--workflow-id", workflow_id, "--input", json.dumps(order))  # fmt: skip
    return workflow_id


async def until(cli: Cli, workflow_id: str, check: Any) -> dict[str, Any]:
    """The run's progress (asked through the CLI) once ``check`` holds for it."""
    async with asyncio.timeout(WAIT):
        while True:
            progress = await asyncio.to_thread(cli.progress, workflow_id)
            if check(progress):
                return progress
            await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ({"order_id": "s-1", "product_id": "prod-1", "qty": 2}, "qty: unknown field"),
        ({"product_id": "prod-1", "quantity": 2}, "order_id: missing (required)"),
        ({"order_id": "s-1", "product_id": "prod-1", "quantity": "2"}, "quantity: '2' is not"),
    ],
)
async def test_a_malformed_order_fails_the_run_at_once(
    cli: Cli,
    temporal_client: Client,
    store: Store,
    queue: str,
    order: dict[str, Any],
    problem: str,
) -> None:
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = temporal_client.get_workflow_handle(start(cli, queue, order))
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(handle.result(), WAIT)
    failure = caught.value.cause
    assert isinstance(failure, ApplicationError) and failure.type == "InputError"
    assert failure.non_retryable and problem in failure.message
    assert (await handle.describe()).status is WorkflowExecutionStatus.FAILED
    assert store.count("payments", "s-1") == 0 and store.count("reservations", "s-1") == 0


async def test_a_valid_order_from_the_cli_completes(
    cli: Cli, temporal_client: Client, store: Store, queue: str
) -> None:
    async with order_worker(temporal_client, store, task_queue=queue):
        workflow_id = start(cli, queue, {"order_id": "s-2", "product_id": "prod-1", "quantity": 2})
        result = await asyncio.wait_for(
            temporal_client.get_workflow_handle(workflow_id).result(), WAIT
        )
    assert result["status"] == "completed" and store.count("payments", "s-2") == 1


async def test_a_malformed_signal_is_dropped_and_the_run_keeps_waiting(
    cli: Cli, temporal_client: Client, store: Store, queue: str
) -> None:
    order = {"order_id": "s-3", "product_id": "prod-1", "quantity": 2, "review_threshold": 1000}
    async with order_worker(temporal_client, store, task_queue=queue):
        workflow_id = start(cli, queue, order)
        await until(cli, workflow_id, lambda p: p["step"] == "await_approval")
        cli("workflow", "signal", "--workflow-id", workflow_id, "--name", "approve",
            "--input", '{"x": 1}')  # fmt: skip
        progress = await until(cli, workflow_id, lambda p: bool(p["dropped"]))
        assert progress["step"] == "await_approval"
        assert progress["dropped"] == ["signal 'approve': expected a string, got dict {'x': 1}"]
        cli("workflow", "signal", "--workflow-id", workflow_id, "--name", "approve",
            "--input", '"looks fine"')  # fmt: skip
        handle = temporal_client.get_workflow_handle(workflow_id)
        assert (await asyncio.wait_for(handle.result(), WAIT))["status"] == "completed"


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
    assert set(schema["queries"]) == {"progress"}
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
