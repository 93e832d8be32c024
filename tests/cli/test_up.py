"""``belugaflow up`` as a person runs it (``make run``): real processes, real HTTP, real Temporal.

Each test starts ``up`` as a subprocess in a temporary directory, with free ports and its own
data directory, reads what it prints, and checks that what it started is gone afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.server.chromium import Browser

if TYPE_CHECKING:
    from belugaflow.temporal import DevServer

ROOT = Path(__file__).resolve().parents[2]
READY = "Press Ctrl-C to stop everything."
CHROMIUM = shutil.which("chromium")


class Up:
    """A running ``belugaflow up`` and the lines it printed so far."""

    def __init__(self, *args: str, cwd: Path, **extra_env: str) -> None:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("OPENAI_API_KEY", "BELUGAFLOW_ORDERS_DB")
            and not name.upper().startswith("BELUGAFLOW__")
        }
        env["PYTHONPATH"] = str(ROOT)  # the default app is examples.order_processing.app
        env.update(extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "belugaflow.cli", "up", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        """Return once a printed line contains ``text``; fail if ``up`` exits first."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None:
                self._reader.join(5)
                if any(text in line for line in self.lines):
                    return
                pytest.fail(f"up exited with {self.process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout} s:\n{self.output}")
            time.sleep(0.1)

    def exit_code(self, timeout: float = 40.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def pids(self) -> dict[str, int]:
        """The processes ``up`` said it started, by name."""
        found = (re.match(r"  (temporal|worker|api) +pid (\d+)", line) for line in self.lines)
        return {match[1]: int(match[2]) for match in found if match is not None}

    def url(self, key: str) -> str:
        """The first URL on the ``Open:`` line named ``key``."""
        for line in self.lines:
            match = re.match(rf"  {re.escape(key)} +(http://\S+)", line)
            if match:
                return match[1]
        pytest.fail(f"no {key!r} URL in:\n{self.output}")

    def stop(self) -> None:
        """Kill what is left after a failed test (the children have their own groups)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for pid in self.pids().values():
            if group_alive(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    """Start ``up`` in ``tmp_path``; whatever is left of it is killed after the test."""
    started: list[Up] = []

    def make(*args: str, **env: str) -> Up:
        up = Up(*args, cwd=tmp_path, **env)
        started.append(up)
        return up

    yield make
    for up in started:
        up.stop()


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(url: str) -> int:
    """The status of a GET of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_up_runs_the_sample_orders_through_the_api_and_ctrl_c_stops_everything(
    start: Callable[..., Up], tmp_path: Path
) -> None:
    """``up`` starts Temporal, a worker and the API, sends the samples through the API (the
    review approved by a signal), prints URLs that answer, and SIGINT stops every process."""
    data = tmp_path / "data"
    up = start(
        "--data-dir",
        str(data),
        "--temporal-port",
        "0",
        "--api-port",
        "0",
        "--metrics-port",
        "0",
        "--fast",
    )
    up.wait_for(READY)
    out = up.output
    assert "UP-1001  => completed: order UP-1001 is paid" in out
    assert "decided approve by rules:default_decide" in out  # offline: the rule, no API key
    assert "UP-1002  => out_of_stock" in out
    assert "UP-1003  waits in 'await_review' for a reviewer: approving" in out
    assert re.search(r"UP-1003  => completed: .*decided manual_review by rules", out)
    assert "UP-1004  waits in 'await_review' for you to review it" in out
    # Memory: the reviewer rejects UP-1005; UP-1006, alike and under every limit, recalls that
    # and waits for the reviewer too (the rule alone would approve it).
    assert "UP-1005  waits in 'await_review' for a reviewer: rejecting" in out
    assert re.search(r"UP-1005  => rejected: .*decided approve by rules:default_decide\n", out)
    assert "UP-1006  waits in 'await_review' for a reviewer: rejecting" in out
    recalled = r"recalled UP-1005 rejected \(similarity 0\.(8[6-9]|9\d)\)"
    assert re.search(rf"UP-1006  => rejected: .*decided manual_review by rules.*; {recalled}", out)
    assert out.index("UP-1005  => rejected") < out.index("UP-1006  ") < out.index(READY)

    pids = up.pids()
    assert set(pids) == {"temporal", "worker", "api"}
    assert children(up.process.pid) == set(pids.values())  # it said what it started

    docs = up.url("API docs")
    api = docs.removesuffix("/docs")
    assert status(docs) == 200
    assert status(f"{api}/healthz") == 200
    assert status(f"{api}/readyz") == 200
    page = up.url("run page")
    assert page.startswith(f"{api}/runs/up-UP-1004-")
    shell = re.search(r"belugaflow workflows signal (\S+) review --value", out)
    assert shell is not None and page.endswith(f"/runs/{shell[1]}")
    assert status(up.url("Temporal UI")) == 200
    assert status(up.url("metrics")) == 200  # the API's; the worker's follows on the line
    worker_metrics = re.search(r", (http://\S+/metrics) \(worker\)", out)
    assert worker_metrics is not None and status(worker_metrics[1]) == 200
    assert (data / "temporal.db").exists() and (data / "orders.db").exists()
    assert (data / "memory.db").exists()  # the order memory, beside the shop

    # The person: opens the run page, sees the order wait for review, approves it there.
    if CHROMIUM is not None:
        with Browser(CHROMIUM, tmp_path) as browser:
            browser.goto(page)
            # ?.: the page draws the graph once its GET /graph answers, after the load event.
            waiting = "document.querySelector('svg.graph [data-node=\"await_review\"]')"
            browser.wait_until(f"{waiting}?.dataset.status === 'waiting'", what="the review")
            approve = 'button[data-signal="review"][data-value="approve"]'
            browser.wait_until(f"!document.querySelector('{approve}').disabled", what="enabled")
            browser.click(approve)
            browser.wait_until(
                "document.getElementById('status').textContent === 'completed'", what="done"
            )
            assert browser.exceptions() == []

    up.process.send_signal(signal.SIGINT)
    assert up.exit_code() == 0, up.output
    assert "stopped: temporal, worker, api" in up.output
    for name, pid in pids.items():
        assert not group_alive(pid), f"the {name} (pid {pid}) is still running"


def test_up_on_a_temporal_it_finds_uses_its_own_namespace_and_stops_when_a_child_dies(
    start: Callable[..., Up], temporal_server: DevServer
) -> None:
    """With a Temporal server already on the port, ``up`` says so, runs the samples in the
    ``belugaflow-up`` namespace and task queue, starts no server; when its worker dies, it
    names it, stops the API and exits 1, leaving the found server running."""
    port = str(temporal_server.port)
    up = start("--temporal-port", port, "--api-port", "0", "--metrics-port", "0")
    up.wait_for(READY)
    out = up.output
    assert f"Temporal: found a server at 127.0.0.1:{port} (Temporal " in out
    assert "using namespace 'belugaflow-up' and task queue 'belugaflow-up'" in out
    assert "UP-1003  => completed" in out
    pids = up.pids()
    assert set(pids) == {"worker", "api"}  # no server of its own

    review = re.search(r"run page +http://\S+/runs/(\S+)", out)
    assert review is not None
    asyncio.run(_check_namespace(temporal_server.address, review[1]))

    os.kill(pids["worker"], signal.SIGKILL)
    assert up.exit_code() == 1
    assert f"the worker (pid {pids['worker']}) exited with code -9" in up.output
    assert "stopped: worker, api" in up.output
    for pid in pids.values():
        assert not group_alive(pid)
    assert temporal_server.running


async def _check_namespace(address: str, workflow_id: str) -> None:
    """The run is in namespace ``belugaflow-up``, on task queue ``belugaflow-up``, and not
    in the server's ``default`` namespace."""
    from temporalio.client import Client
    from temporalio.service import RPCError

    ours = await Client.connect(address, namespace="belugaflow-up")
    described = await ours.get_workflow_handle(workflow_id).describe()
    assert described.task_queue == "belugaflow-up"
    other = await Client.connect(address, namespace="default")
    with pytest.raises(RPCError, match="not found"):
        await other.get_workflow_handle(workflow_id).describe()


def test_up_refuses_a_temporal_address_on_another_machine(start: Callable[..., Up]) -> None:
    """A ``temporal.address`` that is not local is refused, pointing at worker and serve."""
    up = start(BELUGAFLOW__TEMPORAL__ADDRESS="temporal.example.com:7233")
    assert up.exit_code() == 1
    assert "temporal.address is 'temporal.example.com:7233', not on this machine" in up.output
    assert "`belugaflow worker` and `belugaflow serve`" in up.output
    assert up.pids() == {}


@pytest.mark.parametrize(
    "secured",
    [{"BELUGAFLOW__TEMPORAL__API_KEY": "k"}, {"BELUGAFLOW__TEMPORAL__TLS__ENABLED": "true"}],
)
def test_up_refuses_to_start_a_plain_server_for_a_secured_config(
    start: Callable[..., Up], secured: dict[str, str]
) -> None:
    """With temporal.tls or temporal.api_key set and no server at the address, ``up`` does
    not start its plain server, which its own worker and API could not reach."""
    with socket.socket() as probe:  # a free port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    up = start(BELUGAFLOW__TEMPORAL__ADDRESS=address, **secured)
    assert up.exit_code() == 1
    assert f"sets temporal.tls or temporal.api_key, but nothing answers at {address}" in up.output
    assert "start the secured server first" in up.output
    assert up.pids() == {}


def test_up_refuses_a_port_where_something_else_listens(start: Callable[..., Up]) -> None:
    """Something that listens on the Temporal port but is no Temporal server is refused."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        up = start("--temporal-port", str(port))
        assert up.exit_code() == 1
    expected = f"something listens on 127.0.0.1:{port} but does not answer as a Temporal server"
    assert expected in up.output
    assert up.pids() == {}


def test_serve_says_which_port_it_cannot_listen_on(tmp_path: Path) -> None:
    """``belugaflow serve`` on a taken port exits 1 naming the address and the option."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BELUGAFLOW_ORDERS_DB": str(tmp_path / "o.db")}
    app = "examples.order_processing.app:orch"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "belugaflow.cli",
                "serve",
                "--app",
                app,
                "--port",
                port,
                "--no-auth",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "(--port, server.port)" in done.stderr
