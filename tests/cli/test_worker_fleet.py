"""``belugaflow worker --processes N``: a real fleet of worker processes on the session's dev
server.

The fleet serves this module's ``orch`` (``--app tests.cli.test_worker_fleet:orch``): one graph
whose only node leaves a marker file named after the worker process that ran it (so a test
knows which child took which run) and waits while a hold file exists (so a test can keep an
activity running across a signal). The supervisor runs in its own process group, and the test
kills that group when it ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from belugaflow import Orchestrator
from belugaflow.cli._fleet import MAX_FAILED_STARTS, MAX_PROCESSES, child_arguments
from belugaflow.graph import CompiledGraph
from belugaflow.temporal import DevServer

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.cli.test_worker_fleet:orch"
MARKS_ENV = "BELUGAFLOW_FLEET_MARKS"
WAIT = 60.0
"""How long a step may take before the test fails: generous, never a measured duration."""


async def work(state: dict[str, Any]) -> dict[str, Any]:
    """Mark ``<run>.<pid>``, then wait while ``<run>.hold`` exists."""
    marks = Path(os.environ[MARKS_ENV])
    (marks / f"{state['run']}.{os.getpid()}").touch()
    while (marks / f"{state['run']}.hold").exists():  # noqa: ASYNC110 (another process says when)
        await asyncio.sleep(0.05)
    return {"done_by": os.getpid()}


def add_job(orch: Orchestrator) -> CompiledGraph:
    graph = orch.create_graph("fleet_job")
    graph.add_node("work", work).set_entry_point("work").set_finish_point("work")
    return graph.compile()


orch = Orchestrator()  # its workers serve /metrics
add_job(orch)


class Fleet:
    """``belugaflow worker --app APP ... ARGS`` in its own process group, output in ``log``."""

    def __init__(self, args: list[str], log: Path, marks: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "belugaflow.cli", "worker", *args],
                cwd=ROOT,
                env={**os.environ, MARKS_ENV: str(marks)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` matches of ``pattern`` in the output, once there are that many."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = list(re.finditer(pattern, self.output()))
            if len(found) >= count:
                return found[:count]
            assert self.process.poll() is None, f"the fleet exited early:\n{self.output()}"
            time.sleep(0.1)
        raise AssertionError(f"no {count}x {pattern!r} in the fleet's output:\n{self.output()}")

    def pid_of(self, index: int, count: int = 1) -> int:
        """The pid of child ``index``'s ``count``-th process, as the supervisor printed it."""
        return int(self.wait_for(rf"fleet: worker {index}: pid (\d+)", count)[-1].group(1))

    def exit_code(self) -> int:
        try:
            return self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the fleet did not exit:\n{self.output()}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


@pytest.fixture
def fleets(tmp_path: Path, marks: Path) -> Iterator[list[Fleet]]:
    """Fleets a test started (``fleets.append``); killed, with their children, at the end."""
    started: list[Fleet] = []
    yield started
    for fleet in started:
        fleet.kill()


def _start(fleets: list[Fleet], server: DevServer, queue: str, marks: Path, *extra: str) -> Fleet:
    args = ["--app", APP, "--address", server.address, "--namespace", server.namespace]
    fleet = Fleet([*args, "--task-queue", queue, *extra], marks / f"fleet-{len(fleets)}.log", marks)
    fleets.append(fleet)
    return fleet


def _free_port_pair() -> int:
    """A port P with P and P+1 free just now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port < 65535:
                with socket.socket() as second, contextlib.suppress(OSError):
                    second.bind(("127.0.0.1", port + 1))
                    return port
    raise AssertionError("no two consecutive free ports")


def _client(server: DevServer, queue: str) -> tuple[Orchestrator, CompiledGraph]:
    client = Orchestrator(
        workflow_task_queue=queue,
        temporal_address=server.address,
        temporal_namespace=server.namespace,
        metrics=False,
    )
    return client, add_job(client)


def _release_all(marks: Path) -> None:
    for hold in marks.glob("*.hold"):
        hold.unlink()


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return int(response.status)


def _marked_by(marks: Path, run: str) -> int | None:
    found = [int(path.suffix[1:]) for path in marks.glob(f"{run}.*") if path.suffix[1:].isdigit()]
    return found[0] if found else None


async def _held_runs_until(
    client: Orchestrator, job: CompiledGraph, marks: Path, wanted: set[int]
) -> list[Any]:
    """Start runs whose activity holds, one at a time, until processes ``wanted`` each hold
    one (at most 20 runs); then release them all. Their handles."""
    handles, seen = [], set()
    for _ in range(20):
        run = uuid.uuid4().hex
        (marks / f"{run}.hold").touch()
        handles.append(await client.start(job, {"run": run}, engine="temporal"))
        while (pid := _marked_by(marks, run)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        seen.add(pid)
        if wanted <= seen:
            break
    _release_all(marks)
    assert wanted <= seen, f"processes {wanted - seen} took no run of 20 (took: {seen})"
    return handles


async def test_a_fleet_shares_the_work_and_replaces_a_killed_worker(
    temporal_server: DevServer, fleets: list[Fleet], marks: Path
) -> None:
    """Two children on one queue: each serves /metrics on its own port (P, P+1) and takes runs;
    one SIGKILLed is restarted (the exit logged with its signal) and the new one takes runs."""
    queue, port = f"fleet-{uuid.uuid4().hex[:8]}", _free_port_pair()
    fleet = _start(fleets, temporal_server, queue, marks, "--processes", "2", "--metrics-port",
                   str(port))  # fmt: skip
    for index in (0, 1):
        fleet.wait_for(rf"\[worker {index}\] metrics at http://127\.0\.0\.1:{port + index}/")
        assert _status(f"http://127.0.0.1:{port + index}/metrics") == 200
    first, second = fleet.pid_of(0), fleet.pid_of(1)
    client, job = _client(temporal_server, queue)
    for handle in await _held_runs_until(client, job, marks, {first, second}):
        assert (await handle.result())["done_by"] in (first, second)

    os.kill(second, signal.SIGKILL)
    fleet.wait_for(r"fleet: worker 1 was killed by SIGKILL after [\d.]+ s; restarting it")
    replacement = fleet.pid_of(1, count=2)
    assert replacement != second
    fleet.wait_for(rf"\[worker 1\] metrics at http://127\.0\.0\.1:{port + 1}/", count=2)
    for handle in await _held_runs_until(client, job, marks, {replacement}):
        assert (await handle.result())["done_by"] in (first, replacement)

    fleet.process.send_signal(signal.SIGTERM)
    assert fleet.exit_code() == 0, fleet.output()
    assert "fleet: every worker drained; stopped" in fleet.output()


async def test_sigterm_lets_a_running_activity_finish_then_every_worker_exits_0(
    temporal_server: DevServer, fleets: list[Fleet], marks: Path
) -> None:
    """SIGTERM to the supervisor reaches both children; the one running an activity keeps
    running until the activity ends, reports it, and only then do they all exit, 0. A plain
    worker afterwards completes the run with the drained child's result."""
    queue = f"fleet-{uuid.uuid4().hex[:8]}"
    fleet = _start(fleets, temporal_server, queue, marks, "--processes", "2", "--metrics-port",
                   "0")  # fmt: skip
    fleet.wait_for(r"\[worker \d\] metrics at http://127\.0\.0\.1:\d+/", count=2)
    client, job = _client(temporal_server, queue)
    run = uuid.uuid4().hex
    (marks / f"{run}.hold").touch()
    handle = await client.start(job, {"run": run}, engine="temporal")
    while (holder := _marked_by(marks, run)) is None:  # noqa: ASYNC110
        await asyncio.sleep(0.05)

    fleet.process.send_signal(signal.SIGTERM)
    fleet.wait_for(r"fleet: SIGTERM: draining 2 workers")
    fleet.wait_for(r"Beginning worker shutdown", count=2)
    # Held, the activity cannot end, so neither can its worker (within its 30 s graceful
    # shutdown): the fleet is still there.
    assert fleet.process.poll() is None, fleet.output()
    os.kill(holder, 0)  # still alive
    (marks / f"{run}.hold").unlink()
    assert fleet.exit_code() == 0, fleet.output()
    assert fleet.output().count("worker drained and stopped") == 2

    finisher = _start(fleets, temporal_server, queue, marks, "--metrics-port", "-1")
    finisher.wait_for(r"polling task queue")
    assert (await handle.result()) == {"run": run, "done_by": holder}


def test_an_app_that_does_not_load_fails_before_any_worker_starts(
    temporal_server: DevServer, fleets: list[Fleet], marks: Path
) -> None:
    """The supervisor loads the app itself first: one error line, exit 1, no child."""
    args = ["--app", "tests.cli.test_worker_fleet:missing", "--processes", "2"]
    fleet = Fleet(args, marks / "broken.log", marks)
    fleets.append(fleet)
    assert fleet.exit_code() == 1
    errors = [line for line in fleet.output().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, fleet.output()
    assert "missing" in errors[0]
    assert not re.search(r"^fleet", fleet.output(), re.MULTILINE)  # no supervisor, no child


def test_workers_that_fail_at_every_start_stop_the_fleet(fleets: list[Fleet], marks: Path) -> None:
    """Nothing listens at the address: each child exits 1 right after its start, is restarted
    after 1 s, 2 s, and after its third failed start the fleet stops with one error line and
    exit 1 — no restart loop."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    args = ["--app", APP, "--address", address, "--processes", "2", "--metrics-port", "-1"]
    fleet = Fleet(args, marks / "unreachable.log", marks)
    fleets.append(fleet)
    assert fleet.exit_code() == 1
    output = fleet.output()
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert f"failed to start {MAX_FAILED_STARTS} times in a row" in errors[0]
    assert "cannot connect to Temporal" in output  # the children's own reason, prefixed
    for index in (0, 1):
        assert len(re.findall(rf"fleet: worker {index}: pid", output)) <= MAX_FAILED_STARTS


def test_children_get_the_command_line_without_processes_and_metrics_port() -> None:
    argv = ["worker", "--app", "m:o", "--processes=3", "--metrics-port", "9000", "--task-queue",
            "q", "--processes", "2", "--metrics-port=1", "--build-id", "b7"]  # fmt: skip
    kept = child_arguments(argv, drop=("--processes", "--metrics-port"))
    assert kept == ["worker", "--app", "m:o", "--task-queue", "q", "--build-id", "b7"]


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--processes", "0"], 2, "--processes"),
        (["--processes", str(MAX_PROCESSES + 1)], 2, "--processes"),
        (["--processes", "4", "--metrics-port", "65534"], 1, "beyond 65535"),
    ],
)
def test_a_bad_process_count_or_port_range_is_refused_before_anything_starts(
    extra: list[str], code: int, message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "belugaflow.cli", "worker", "--app", APP, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "fleet:" not in done.stderr.replace("test_worker_fleet:", "")


async def test_a_second_sigterm_kills_the_workers_at_once(
    temporal_server: DevServer, fleets: list[Fleet], marks: Path
) -> None:
    """The first SIGTERM drains; a second one, while an activity still holds its worker,
    kills every child (the operator wants it over): exit 1, the kill named."""
    queue = f"fleet-{uuid.uuid4().hex[:8]}"
    fleet = _start(fleets, temporal_server, queue, marks, "--processes", "2", "--metrics-port",
                   "-1")  # fmt: skip
    fleet.wait_for(r"\[worker \d\] worker for ", count=2)
    client, job = _client(temporal_server, queue)
    run = uuid.uuid4().hex
    (marks / f"{run}.hold").touch()
    await client.start(job, {"run": run}, engine="temporal")
    while _marked_by(marks, run) is None:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    fleet.process.send_signal(signal.SIGTERM)
    fleet.wait_for(r"Beginning worker shutdown", count=2)
    fleet.process.send_signal(signal.SIGTERM)
    assert fleet.exit_code() == 1, fleet.output()
    assert "fleet: SIGTERM again: killing the workers" in fleet.output()
    assert re.search(r"was killed|not every worker drained cleanly", fleet.output())
