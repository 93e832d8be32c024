"""Rolling out a changed worker while runs of the old build wait, as docs/deploy.md tells an
operator to: ``belugaflow worker --deployment D --build-id B`` and the official ``temporal
worker deployment`` commands.

Build 2 (``tests/temporal/shipping/build2.py``) changes the ``shipping`` graph in place, so the
runs build 1 started cannot continue on it; pinned to build 1, they never have to.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from tests.temporal.cli import Cli
from tests.temporal.fault_app import WorkerProcess

from belugaflow.temporal import DevServer

WAIT = 20.0


@pytest.fixture
def cli(temporal_server: DevServer) -> Cli:
    return Cli(temporal_server)


class Rollout:
    """One worker deployment on its own task queue: its builds' worker processes."""

    def __init__(self, server: DevServer, cli: Cli, logs: Path) -> None:
        self.server, self.cli, self.logs = server, cli, logs
        self.name = f"shipping-{uuid.uuid4().hex[:8]}"
        self.queue = self.name
        self.workers: dict[str, WorkerProcess] = {}

    def start(self, build: str) -> WorkerProcess:
        worker = WorkerProcess(
            f"tests.temporal.shipping.build{build}:orch",
            address=self.server.address,
            namespace=self.server.namespace,
            task_queue=self.queue,
            log=self.logs / f"build{build}.log",
            args=["--deployment", self.name, "--build-id", build],
        )
        self.workers[build] = worker
        return worker

    async def make_current(self, build: str) -> None:
        """``temporal worker deployment set-current-version``, once the server knows the
        build (its worker has polled)."""
        command = ("worker", "deployment", "set-current-version", "--deployment-name",
                   self.name, "--build-id", build, "--yes")  # fmt: skip
        await until(lambda: self.cli.run(*command).returncode == 0)

    def start_run(self, order: str) -> str:
        workflow_id = f"{order}-{self.name}"
        self.cli("workflow", "start", "--type", "shipping", "--task-queue", self.queue,
                 "--workflow-id", workflow_id, "--input", json.dumps({"order": order}))  # fmt: skip
        return workflow_id

    async def until_running_on(self, build: str, expected: list[str]) -> None:
        """Wait until the open runs pinned to ``build``, as an operator lists them, are
        ``expected`` (visibility lags a little behind the runs)."""
        query = (
            f"TemporalWorkerDeploymentVersion='{self.name}:{build}' AND ExecutionStatus='Running'"
        )

        def listed() -> bool:
            out = self.cli("workflow", "list", "--query", query, "-o", "json")
            return [run["execution"]["workflowId"] for run in json.loads(out or "[]")] == expected

        await until(listed)


@pytest.fixture
def rollout(temporal_server: DevServer, cli: Cli, tmp_path: Path) -> Iterator[Rollout]:
    rollout = Rollout(temporal_server, cli, tmp_path)
    yield rollout
    for worker in rollout.workers.values():
        worker.stop()


async def until(check: Callable[[], bool]) -> None:
    """Poll ``check`` (blocking: it runs the CLI) in a thread until it is true."""
    async with asyncio.timeout(WAIT):
        while not await asyncio.to_thread(check):  # noqa: ASYNC110 (another process's state)
            await asyncio.sleep(0.1)


async def until_logged(worker: WorkerProcess, text: str) -> None:
    def logged() -> bool:
        assert worker.running, worker.output()
        return text in worker.log.read_text(errors="replace")

    await until(logged)


async def until_waiting(cli: Cli, workflow_id: str) -> None:
    await until(lambda: cli.progress(workflow_id)["status"] == "waiting")


async def test_pinned_runs_finish_on_their_build_and_new_runs_take_the_next(
    rollout: Rollout, cli: Cli, temporal_client: Client
) -> None:
    build1 = rollout.start("1")
    await until_logged(build1, "is not current (current: none)")
    await rollout.make_current("1")
    old = rollout.start_run("o-1")
    await until_waiting(cli, old)
    await rollout.until_running_on("1", [old])

    build2 = rollout.start("2")
    await until_logged(build2, "is not current (current: 1)")
    await rollout.make_current("2")
    new = rollout.start_run("o-2")
    await until_waiting(cli, new)

    for workflow_id in (old, new):
        cli("workflow", "signal", "--workflow-id", workflow_id, "--name", "approve")
    results = [
        await asyncio.wait_for(temporal_client.get_workflow_handle(run).result(), WAIT)
        for run in (old, new)
    ]
    assert {key: results[0].get(key) for key in ("reserve", "check_address", "ship")} == {
        "reserve": "1",
        "check_address": None,
        "ship": "1",
    }
    assert {key: results[1].get(key) for key in ("reserve", "check_address", "ship")} == {
        "reserve": "2",
        "check_address": "2",
        "ship": "2",
    }
    described: dict[str, Any] = json.loads(
        cli("workflow", "describe", "--workflow-id", old, "-o", "json")
    )
    versioning = described["workflowExecutionInfo"]["versioningInfo"]
    assert versioning["behavior"] == "VERSIONING_BEHAVIOR_PINNED"
    assert versioning["deploymentVersion"] == {"deploymentName": rollout.name, "buildId": "1"}

    # Build 1 has no open run left: it can go. Draining, its worker exits 0.
    await rollout.until_running_on("1", [])
    assert build1.stop() == 0, build1.output()


async def test_without_versioning_the_open_run_breaks_on_the_new_build(
    temporal_server: DevServer, cli: Cli, temporal_client: Client, tmp_path: Path
) -> None:
    """What the procedure prevents: unversioned, build 2 takes over build 1's waiting run and
    fails its every workflow task with a non-determinism error; the run is stuck."""
    queue = f"unversioned-{uuid.uuid4().hex[:8]}"

    def start(build: str) -> WorkerProcess:
        return WorkerProcess(
            f"tests.temporal.shipping.build{build}:orch",
            address=temporal_server.address,
            namespace=temporal_server.namespace,
            task_queue=queue,
            log=tmp_path / f"build{build}.log",
        )

    build1 = start("1")
    try:
        workflow_id = f"o-1-{queue}"
        cli("workflow", "start", "--type", "shipping", "--task-queue", queue,
            "--workflow-id", workflow_id, "--input", '{"order": "o-1"}')  # fmt: skip
        await until_waiting(cli, workflow_id)
    finally:
        assert build1.stop() == 0, build1.output()
    build2 = start("2")
    try:
        cli("workflow", "signal", "--workflow-id", workflow_id, "--name", "approve")
        await until(lambda: bool(failed_tasks(cli, workflow_id)))
        assert (
            failed_tasks(cli, workflow_id)[0]
            == "WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR"
        )
    finally:
        build2.stop()
        cli("workflow", "terminate", "--workflow-id", workflow_id, "--reason", "stuck, by design")


def failed_tasks(cli: Cli, workflow_id: str) -> list[str]:
    """The causes of the run's failed workflow tasks, from its history."""
    out = cli("workflow", "show", "--workflow-id", workflow_id, "-o", "json")
    return [
        event["workflowTaskFailedEventAttributes"]["cause"]
        for event in json.loads(out)["events"]
        if "workflowTaskFailedEventAttributes" in event
    ]
