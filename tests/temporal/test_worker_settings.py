"""``temporal.worker``: what each worker process takes on, and its deployment version."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.worker import FixedSizeSlotSupplier, WorkerTuner
from typer.testing import CliRunner

from belugaflow import Orchestrator
from belugaflow.cli import app
from belugaflow.config import ConfigError, load_config_text
from belugaflow.temporal import create_worker
from belugaflow.temporal._worker import run_worker


def configured(yaml: str) -> Orchestrator:
    return Orchestrator.from_config(load_config_text(yaml))


async def test_the_settings_reach_the_worker(temporal_client: Client) -> None:
    orch = configured(
        "temporal:\n  worker:\n    max_concurrent_activities: 7\n"
        "    max_concurrent_workflow_tasks: 3\n    graceful_shutdown: 2s\n"
        "    deployment: orders\n    build_id: abc123\n    versioning: auto_upgrade\n"
    )
    config = create_worker(temporal_client, orch, task_queue="settings").config()
    assert config["max_concurrent_activities"] == 7
    assert config["max_concurrent_workflow_tasks"] == 3
    assert config["graceful_shutdown_timeout"] == timedelta(seconds=2)
    deployment = config["deployment_config"]
    assert deployment is not None and deployment.use_worker_versioning
    assert deployment.version.deployment_name == "orders"
    assert deployment.version.build_id == "abc123"
    assert deployment.default_versioning_behavior is VersioningBehavior.AUTO_UPGRADE


async def test_defaults_and_what_the_caller_passes(temporal_client: Client) -> None:
    """Unversioned by default, 100 slots each, 30 s to drain; options given win, and a tuner
    replaces the slot counts instead of clashing with them."""
    orch = Orchestrator()
    config = create_worker(temporal_client, orch, task_queue="defaults").config()
    assert config["deployment_config"] is None
    assert (config["max_concurrent_activities"], config["max_concurrent_workflow_tasks"]) == (
        100,
        100,
    )
    assert config["graceful_shutdown_timeout"] == timedelta(seconds=30)
    mine = create_worker(temporal_client, orch, task_queue="mine", max_concurrent_activities=5)
    assert mine.config()["max_concurrent_activities"] == 5
    slots = FixedSizeSlotSupplier(4)
    tuner = WorkerTuner.create_composite(
        workflow_supplier=slots,
        activity_supplier=slots,
        local_activity_supplier=slots,
        nexus_supplier=slots,
    )
    tuned = create_worker(temporal_client, orch, task_queue="tuned", tuner=tuner).config()
    assert tuned["tuner"] is tuner and tuned["max_concurrent_activities"] is None


@pytest.mark.parametrize(
    ("yaml", "problem"),
    [
        ("deployment: orders", "deployment and build_id go together"),
        ("build_id: abc", "deployment and build_id go together"),
        ("max_concurrent_activities: 0", "temporal.worker.max_concurrent_activities"),
        ("graceful_shutdown: -1s", "temporal.worker.graceful_shutdown"),
        ("versioning: sometimes", "temporal.worker.versioning"),
    ],
)
def test_bad_settings_are_named(yaml: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config_text(f"temporal:\n  worker:\n    {yaml}\n")


async def test_one_activity_slot_runs_parallel_nodes_one_at_a_time(
    temporal_client: Client,
) -> None:
    """``max_concurrent_activities: 1``: the graph's two parallel branches never overlap on
    this worker (the default runs them together)."""
    orch = configured("temporal:\n  worker:\n    max_concurrent_activities: 1\n")
    orch.workflow_task_queue = f"one-slot-{uuid.uuid4().hex[:8]}"
    orch.use_client(temporal_client)
    running, most = 0, 0
    lock = threading.Lock()

    def branch(state: dict[str, Any]) -> dict[str, Any]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.5)  # long enough for the other branch to start, were there a slot
        with lock:
            running -= 1
        return {}

    graph = orch.create_graph("one-slot")
    graph.add_node("start", lambda s: {}).add_node("a", branch, blocking=True)
    graph.add_node("b", branch, blocking=True)
    graph.add_node("join", lambda s: {})
    graph.add_edge("start", "a").add_edge("start", "b").add_edge("a", "join")
    graph.add_edge("b", "join").set_entry_point("start").set_finish_point("join")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    try:
        await asyncio.wait_for(orch.run(graph, {}, engine="temporal"), 30)
    finally:
        stop.set()
        await worker
    assert most == 1


def test_worker_flags_need_both_deployment_and_build_id() -> None:
    """``--build-id`` alone (and no deployment in config) is refused before connecting."""
    result = CliRunner().invoke(
        app, ["worker", "--app", "examples.order_processing.app:orch", "--build-id", "7"]
    )
    assert result.exit_code == 1
    assert "worker versioning needs both a deployment and a build id" in result.output
