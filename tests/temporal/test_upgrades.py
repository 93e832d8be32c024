"""Rolling out a changed worker while runs of the old build wait, by the commands of
docs/deploy.md ("Upgrading without breaking running workflows"), read from its ``bash`` blocks
and run against the test server: ``belugaflow worker`` with the build id from the environment,
and the official ``temporal`` CLI.

Build 2 (``tests/temporal/shipping/build2.py``) changes the ``shipping`` graph in place, so the
runs build 1 started cannot continue on it; pinned to build 1, they never have to.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from tests.temporal.cli import Cli
from tests.temporal.fault_app import ROOT, WorkerProcess, belugaflow_command
from tests.test_docs import fenced_blocks

from belugaflow.temporal import DevServer

WAIT = 20.0
DEPLOY_MD = ROOT / "docs" / "deploy.md"


@pytest.fixture
def cli(temporal_server: DevServer) -> Cli:
    return Cli(temporal_server)


def documented(marker: str) -> list[str]:
    """The command lines of the one ``bash`` block of docs/deploy.md holding ``marker``."""
    blocks = fenced_blocks(DEPLOY_MD.read_text(encoding="utf-8"), "docs/deploy.md")
    [block] = [block for block in blocks if block.lang == "bash" and marker in block.code]
    lines = block.code.splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


class Operator:
    """Runs the documented lines against the test server, the app being the ``shipping`` test
    app: ``BUILD_ID=N belugaflow worker --app shipping:orch`` starts a worker of build N (on
    this test's task queue), ``temporal ...`` runs the official CLI, ``kill -TERM
    $BUILD_N_WORKER_PIDS`` sends build N's worker SIGTERM."""

    def __init__(self, server: DevServer, cli: Cli, logs: Path) -> None:
        self.server, self.cli, self.logs = server, cli, logs
        self.queue = f"shipping-{uuid.uuid4().hex[:8]}"
        self.workers: dict[str, WorkerProcess] = {}

    def start_worker(self, line: str) -> WorkerProcess:
        assignment, *command = shlex.split(line)
        assert command == ["belugaflow", "worker", "--app", "shipping:orch"], line
        build = assignment.removeprefix("BUILD_ID=")
        worker = WorkerProcess(
            f"tests.temporal.shipping.build{build}:orch",
            address=self.server.address,
            namespace=self.server.namespace,
            task_queue=self.queue,
            log=self.logs / f"build{build}.log",
            env={"BUILD_ID": build},
        )
        self.workers[build] = worker
        return worker

    async def temporal(self, line: str) -> str:
        """The line's ``temporal`` command; retried while the server does not know a build
        yet (its workers have not polled)."""
        program, *args = shlex.split(line)
        assert program == "temporal", line
        done: list[str] = []

        def succeeded() -> bool:
            ran = self.cli.run(*args)
            done.append(ran.stdout)
            return ran.returncode == 0

        await until(succeeded)
        return done[-1]

    def listed(self, line: str) -> list[str]:
        """The workflow ids ``temporal workflow list`` shows."""
        program, *args = shlex.split(line)
        assert program == "temporal" and args[:2] == ["workflow", "list"], line
        runs = json.loads(self.cli(*args, "--output", "json") or "[]")
        return [run["execution"]["workflowId"] for run in runs]

    def stop(self, line: str) -> int:
        """SIGTERM to the build the line names; the worker's exit code."""
        found = re.fullmatch(r"kill -TERM \$BUILD_(\w+)_WORKER_PIDS", line)
        assert found is not None, line
        return self.workers[found[1]].stop()

    def start_run(self, order: str) -> str:
        workflow_id = f"{order}-{self.queue}"
        self.cli("workflow", "start", "--type", "shipping", "--task-queue", self.queue,
                 "--workflow-id", workflow_id, "--input", json.dumps({"order": order}))  # fmt: skip
        return workflow_id


@pytest.fixture
def operator(temporal_server: DevServer, cli: Cli, tmp_path: Path) -> Iterator[Operator]:
    operator = Operator(temporal_server, cli, tmp_path)
    yield operator
    for worker in operator.workers.values():
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


async def test_the_documented_rollout_keeps_each_run_on_its_build(
    operator: Operator, cli: Cli, temporal_client: Client
) -> None:
    start_build1, make_build1_current = documented("--build-id 1 --yes")
    start_build2, make_build2_current, list_build1_runs, stop_build1 = documented(
        "--build-id 2 --yes"
    )

    build1 = operator.start_worker(start_build1)
    await until_logged(build1, "is not current (current: none)")
    await operator.temporal(make_build1_current)
    old = operator.start_run("o-1")
    await until_waiting(cli, old)
    await until(lambda: operator.listed(list_build1_runs) == [old])

    build2 = operator.start_worker(start_build2)
    await until_logged(build2, "is not current (current: 1)")
    await operator.temporal(make_build2_current)
    new = operator.start_run("o-2")
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
    assert versioning["deploymentVersion"] == {"deploymentName": "shipping", "buildId": "1"}

    await until(lambda: operator.listed(list_build1_runs) == [])
    assert operator.stop(stop_build1) == 0, build1.output()


async def test_without_versioning_the_open_run_breaks_on_the_new_build(
    temporal_server: DevServer, cli: Cli, temporal_client: Client, tmp_path: Path
) -> None:
    """What the procedure prevents: unversioned, build 2 takes over build 1's waiting run and
    fails its every workflow task with a non-determinism error; the run is stuck.
    ``belugaflow replay --query`` (the documented check before such a rollout) says so first."""
    queue = f"unversioned-{uuid.uuid4().hex[:8]}"
    unversioned = {"BUILD_ID": "", "BELUGAFLOW__TEMPORAL__WORKER__DEPLOYMENT": ""}

    def start(build: str) -> WorkerProcess:
        return WorkerProcess(
            f"tests.temporal.shipping.build{build}:orch",
            address=temporal_server.address,
            namespace=temporal_server.namespace,
            task_queue=queue,
            log=tmp_path / f"build{build}.log",
            env=unversioned,
        )

    def replay(build: str) -> subprocess.CompletedProcess[str]:
        app = f"tests.temporal.shipping.build{build}:orch"
        query = f"WorkflowId='{workflow_id}'"
        target = ["--address", temporal_server.address, "--namespace", temporal_server.namespace]
        return subprocess.run(
            [*belugaflow_command(), "replay", "--app", app, "--query", query, *target],
            cwd=ROOT,
            env={**os.environ, **unversioned},
            capture_output=True,
            text=True,
            timeout=60,
        )

    build1 = start("1")
    try:
        workflow_id = f"o-1-{queue}"
        cli("workflow", "start", "--type", "shipping", "--task-queue", queue,
            "--workflow-id", workflow_id, "--input", '{"order": "o-1"}')  # fmt: skip
        await until_waiting(cli, workflow_id)
    finally:
        assert build1.stop() == 0, build1.output()
    refused = await asyncio.to_thread(replay, "2")
    assert refused.returncode == 12, refused.stdout + refused.stderr
    assert f"FAIL  {workflow_id}  shipping: [TMPRL1100] Nondeterminism error" in refused.stdout
    assert (await asyncio.to_thread(replay, "1")).returncode == 0
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
