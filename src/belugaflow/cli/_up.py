"""``belugaflow up``: the whole system on this machine, in one command, until Ctrl-C.

It starts Temporal's dev server (unless one already listens on the configured address), a
worker (``belugaflow worker``) and the REST API (``belugaflow serve``) as child processes, each
in a process group of its own; waits until all three are ready; sends the sample orders
through the API (:mod:`belugaflow.cli._samples`); prints where to look; and on SIGINT or SIGTERM
stops everything it started. See ``docs/up.md``.

The rule for the Temporal address (the app's ``temporal.address``, or ``127.0.0.1:N`` with
``--temporal-port N``):

- not on this machine (a host other than ``localhost``, ``127.0.0.1``, ``::1``): refused, since
  ``up`` runs everything locally (``belugaflow worker`` and ``belugaflow serve`` are for a
  cluster);
- nothing listens there: the embedded dev server is started on that port, state in
  ``<data dir>/temporal.db``, web UI on; the app's own namespace and task queue are used;
- a Temporal server answers there: it is used as found, with the namespace and task queue
  ``belugaflow-up`` (the namespace created if missing), so these runs never mix with another
  application's workers;
- something else listens there: refused, naming the address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from belugaflow._defaults import DEFAULTS
from belugaflow.cli._output import ExitCode, fail
from belugaflow.cli._samples import SHOP_DB_ENV, SampleError, submit_samples
from belugaflow.cli._serve import api_settings
from belugaflow.cli._target import TargetError, load_orchestrator

if TYPE_CHECKING:
    from belugaflow import Orchestrator
    from belugaflow.temporal import DevServer

__all__ = [
    "DEFAULT_APP",
    "DEFAULT_DATA_DIR",
    "LOCAL_HOSTS",
    "UP_NAMESPACE",
    "UP_TASK_QUEUE",
    "up",
]

DEFAULT_APP = "examples.order_processing.app:orch"
"""The app ``up`` serves unless told otherwise: the order example."""
DEFAULT_DATA_DIR = Path(".belugaflow")
"""Where ``up`` keeps the dev server's database and every log, relative to the working
directory."""
UP_NAMESPACE = "belugaflow-up"
"""The namespace ``up`` uses on a Temporal server it did not start."""
UP_TASK_QUEUE = "belugaflow-up"
"""The task queue ``up`` uses on a Temporal server it did not start."""
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
"""Hosts of a Temporal address ``up`` accepts: this machine."""

HOST = "127.0.0.1"
_READY_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
_POLL = 0.2
_PROBE_TIMEOUT = 2.0
_LOG_TAIL_LINES = 20
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Failed(Exception):
    """``up`` cannot go on; the message says why (everything started is stopped)."""


# --- The processes --------------------------------------------------------------------------


@dataclass
class _Child:
    """A ``belugaflow`` child process, leader of its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def terminate(self) -> None:
        _signal_group(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait for the process to exit; SIGKILL its group after ``timeout`` seconds."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # Not reaped yet, so its pid (the group's id) cannot belong to anyone else.
            _signal_group(self.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self) -> str:
        return _tail(self.log)


class _Stack:
    """Everything ``up`` started, stopped in reverse order."""

    def __init__(self) -> None:
        self.server: DevServer | None = None
        self.children: list[_Child] = []
        self._logs: list[IO[bytes]] = []

    def spawn(self, name: str, args: list[str], log: Path) -> _Child:
        """Run ``belugaflow ARGS`` (this interpreter) with its output appended to ``log``."""
        command = [sys.executable, "-m", "belugaflow.cli", *args]
        out = log.open("ab")
        self._logs.append(out)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own group: a Ctrl-C in the terminal reaches only `up`, which stops the
            # children in order; and a signal for the group reaches all it started.
            start_new_session=True,
        )
        child = _Child(name, process, log)
        self.children.append(child)
        return child

    def dead(self) -> str | None:
        """What died on its own, with the end of its log; None while everything runs."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                return (
                    f"the {child.name} (pid {child.pid}) exited with code {code}; last lines of"
                    f" {child.log}:\n{child.tail()}"
                )
        server = self.server
        if server is not None and not server.running:
            return (
                f"the Temporal dev server exited with code {server.wait(0)}; last lines of"
                f" {server.log_file}:\n{server.log_tail()}"
            )
        return None

    def stop(self) -> None:
        """SIGTERM to every child at once, wait (SIGKILL after a timeout), then the server."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.terminate()
        for child in reversed(self.children):
            child.wait(_STOP_TIMEOUT)
        if self.server is not None:
            self.server.stop_sync(_STOP_TIMEOUT)
        for log in self._logs:
            log.close()


# --- The command ----------------------------------------------------------------------------


def up(
    app: Annotated[
        str,
        typer.Option(
            "--app",
            metavar="MODULE:ORCH",
            help="MODULE:OBJECT of your Orchestrator (or a zero-argument factory returning one).",
        ),
    ] = DEFAULT_APP,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Where the dev server's database (temporal.db) and the logs go.",
        ),
    ] = DEFAULT_DATA_DIR,
    temporal_port: Annotated[
        int | None,
        typer.Option(
            "--temporal-port",
            metavar="N",
            min=0,
            max=65535,
            help="Use Temporal at 127.0.0.1:N (started there unless one answers; 0 starts one"
            " on a free port) [default: the app's temporal.address].",
        ),
    ] = None,
    ui_port: Annotated[
        int | None,
        typer.Option(
            "--ui-port",
            metavar="N",
            min=0,
            max=65535,
            help="The embedded server's web UI port; 0 takes a free one [default: the Temporal"
            " port + 1000, or a free one if that is taken].",
        ),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(
            "--api-port",
            metavar="N",
            min=0,
            max=65535,
            help="The REST API's port on 127.0.0.1; 0 takes a free one [default: the app's"
            " server.port, 8000, or a free one if that is taken].",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="N",
            min=0,
            max=65535,
            help="The worker's /metrics and /readyz port; 0 takes a free one [default: the"
            " app's monitoring.metrics.port, 9464, or a free one if that is taken].",
        ),
    ] = None,
    samples: Annotated[
        bool | None,
        typer.Option(
            "--samples/--no-samples",
            help="Send the order example's sample orders through the API [default: only with"
            " the default app].",
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast/--durable",
            help="As for `server start-dev`: --durable (default) fsyncs every commit of the"
            " embedded server; --fast never does (for tests).",
        ),
    ] = False,
) -> None:
    """Run the whole system on this machine: Temporal, a worker and the REST API, until Ctrl-C.

    Starts the embedded Temporal dev server (unless one answers on the app's temporal.address:
    then it uses that one, with its own namespace and task queue, belugaflow-up), a worker and
    the API as child processes; waits until all are ready; sends the sample orders through
    the API; prints the URLs to open. Ctrl-C or SIGTERM stops everything it started and exits
    0; if a process dies on its own, it says which, stops the rest and exits 1.
    """
    stack = _Stack()
    code = ExitCode.OK
    # Both stop everything; SIGINT too even if this process was started with it ignored (as
    # background jobs of a shell are).
    previous = {signum: signal.signal(signum, _interrupt) for signum in _STOP_SIGNALS}
    try:
        _bring_up(
            stack,
            app=app,
            data_dir=data_dir,
            temporal_port=temporal_port,
            ui_port=ui_port,
            api_port=api_port,
            metrics_port=metrics_port,
            samples=samples,
            fast=fast,
        )
    except KeyboardInterrupt:
        typer.echo("\nstopping everything belugaflow up started...")
    except _Failed as error:
        typer.echo(f"{typer.style('error:', fg='red', bold=True)} {error}", err=True)
        code = ExitCode.INVALID
    except typer.Exit as error:  # fail() before anything started
        code = ExitCode(error.exit_code)
    finally:
        # A second Ctrl-C must not leave children behind: stopping is bounded by timeouts.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stack.children or stack.server is not None:
        typer.echo("stopped: " + ", ".join(_started(stack)))
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK's native runtime (a client of ours may have registered the namespace)
    # can crash while the interpreter shuts down (sdk-python#300): leave without finalizers.
    os._exit(code)


def _started(stack: _Stack) -> list[str]:
    names = [] if stack.server is None else ["temporal"]
    return names + [child.name for child in stack.children]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _bring_up(
    stack: _Stack,
    *,
    app: str,
    data_dir: Path,
    temporal_port: int | None,
    ui_port: int | None,
    api_port: int | None,
    metrics_port: int | None,
    samples: bool | None,
    fast: bool,
) -> None:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if app == DEFAULT_APP and not os.environ.get(SHOP_DB_ENV):
        os.environ[SHOP_DB_ENV] = str(data_dir / "orders.db")  # the example's shop, here too
    try:
        orch = load_orchestrator(app, search_dir=os.getcwd())
    except (TargetError, ValueError) as error:
        fail(str(error))

    temporal = _temporal(stack, orch, data_dir, temporal_port, ui_port, fast)
    worker_port, worker_note = _port(metrics_port, orch.metrics_port, "the worker's metrics")
    _, configured_api = api_settings(orch)
    port, api_note = _port(api_port, configured_api, "the API")
    for note in (worker_note, api_note):
        if note:
            typer.echo(note)
    target = [
        "--app",
        app,
        "--address",
        temporal.address,
        "--namespace",
        temporal.namespace,
        "--task-queue",
        temporal.task_queue,
    ]
    worker = stack.spawn(
        "worker", ["worker", *target, "--metrics-port", str(worker_port)], data_dir / "worker.log"
    )
    api = stack.spawn(
        "api",
        ["serve", *target, "--host", HOST, "--port", str(port), "--no-auth"],
        data_dir / "api.log",
    )
    metrics_host = orch.metrics_host if orch.metrics_host not in ("0.0.0.0", "::", "") else HOST
    worker_url = f"http://{metrics_host}:{worker_port}"
    api_url = f"http://{HOST}:{port}"

    typer.echo(f"Started (logs in {data_dir}):")
    if stack.server is not None:
        typer.echo(f"  temporal  pid {stack.server.pid}  {temporal.where}")
    typer.echo(
        f"  worker    pid {worker.pid}  task queue {temporal.task_queue!r}, namespace"
        f" {temporal.namespace!r}"
    )
    typer.echo(f"  api       pid {api.pid}  {api_url}")
    _wait_ready(stack, {"worker": f"{worker_url}/readyz", "API": f"{api_url}/readyz"})
    typer.echo("Ready.")

    if samples is None:
        samples = app == DEFAULT_APP
    review_id = "<workflow id>"
    if samples:
        run = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            ids = submit_samples(api_url, run=run, echo=_echo)
        except SampleError as error:
            raise _Failed(f"the sample orders failed: {error}") from None
        review_id = ids.get("UP-1004", review_id)
    else:
        typer.echo("Sample orders: not sent (--samples sends the order example's).")

    rows = [
        ("API docs", f"{api_url}/docs"),
        ("run page", f"{api_url}/runs/{review_id}  (approve or reject the order there)"),
        ("Temporal UI", temporal.ui or "none (the server was already running; see its own)"),
        ("metrics", f"{api_url}/metrics (API), {worker_url}/metrics (worker)"),
        ("API keys", "none needed: up serves this machine only (belugaflow serve needs keys)"),
    ]
    typer.echo("Open:")
    for key, value in rows:
        typer.echo(f"  {key:<12}  {value}")
    typer.echo(
        "Or from another shell: belugaflow workflows signal"
        f' {review_id} review --value \'{{"verdict": "approve"}}\''
    )
    typer.echo("Press Ctrl-C to stop everything.")
    while True:
        died = stack.dead()
        if died is not None:
            raise _Failed(died)
        time.sleep(_POLL)


def _echo(line: str) -> None:
    typer.echo(line)


# --- Temporal -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Temporal:
    """The Temporal server ``up`` uses, and where in it."""

    address: str
    namespace: str
    task_queue: str
    ui: str | None
    where: str


def _temporal(
    stack: _Stack,
    orch: Orchestrator,
    data_dir: Path,
    port: int | None,
    ui_port: int | None,
    fast: bool,
) -> _Temporal:
    """Start the embedded server, or use the one found (see the module's docstring)."""
    if port is not None:
        _refuse_if_secured(orch, f"--temporal-port {port} is a plain local server")
        host = HOST
    else:
        host, _, text = orch.temporal_address.rpartition(":")
        if not host or not text.isdigit():
            fail(f"temporal.address must be HOST:PORT, got {orch.temporal_address!r}")
        port = int(text)
        if host not in LOCAL_HOSTS:
            fail(
                f"temporal.address is {orch.temporal_address!r}, not on this machine:"
                " `belugaflow up` runs everything locally. Against a cluster, run"
                " `belugaflow worker` and `belugaflow serve` instead (or pass --temporal-port"
                " to start a local server)"
            )
    address = f"{host}:{port}"
    # The configured address is reached with the configured TLS and API key (a local TLS
    # proxy, say); a --temporal-port is a plain local server.
    secured: dict[str, Any] = {"tls": orch.temporal_tls, "api_key": orch.temporal_api_key}
    if address != orch.temporal_address:
        secured = {}
    if port and _listens(host, port):
        version = _temporal_version(address, **secured)
        if version is None:
            fail(
                f"something listens on {address} but does not answer as a Temporal server;"
                " stop it, or choose another port with --temporal-port"
            )
        typer.echo(
            f"Temporal: found a server at {address} ({version}), not started by this command;"
            f" using namespace {UP_NAMESPACE!r} and task queue {UP_TASK_QUEUE!r}, so these"
            " runs never mix with another application's workers"
        )
        _ensure_namespace(address, UP_NAMESPACE, **secured)
        ui = _existing_ui(host, port)
        return _Temporal(address, UP_NAMESPACE, UP_TASK_QUEUE, ui, f"{address} (found)")
    _refuse_if_secured(orch, f"nothing answers at {address}")
    return _embedded(stack, orch, data_dir, port, ui_port, fast)


def _refuse_if_secured(orch: Orchestrator, why: str) -> None:
    """The worker and API connect as the app's config says: never to a plain server when it
    asks for TLS or an API key."""
    tls = orch.temporal_tls
    tls_on = tls is not None and (tls.active if tls.enabled is None else tls.enabled)
    if tls_on or orch.temporal_api_key is not None:
        fail(
            f"the app's config sets temporal.tls or temporal.api_key, but {why}, and the"
            " server `belugaflow up` starts is plain TCP, which its worker and API could not"
            " reach: start the secured server first (up then uses it), or run up with a"
            " config without temporal.tls and temporal.api_key"
        )


def _embedded(
    stack: _Stack,
    orch: Orchestrator,
    data_dir: Path,
    port: int,
    ui_port: int | None,
    fast: bool,
) -> _Temporal:
    from belugaflow.temporal import DevServer, DevServerError, Durability
    from belugaflow.temporal import TemporalBinaryNotFoundError as NotFound

    if ui_port is None:
        wanted = port + 1000 if port and port + 1000 <= 65535 else 0
        ui_port, note = _port(None, wanted, "the Temporal web UI")
        if note:
            typer.echo(note)
    namespace = orch.temporal_namespace
    server = DevServer(
        data_dir / "temporal.db",
        port=port,
        ui=True,
        ui_port=ui_port,
        namespace=namespace,
        durability=Durability.FAST if fast else Durability.FULL,
    )
    typer.echo(f"Temporal: starting the embedded dev server ({server.db_file})...")
    stack.server = server
    try:
        server.start_sync()
    except (DevServerError, NotFound) as error:
        stack.server = None
        raise _Failed(str(error)) from None
    ui = f"{server.ui_url}/namespaces/{namespace}/workflows" if server.ui_url else None
    where = f"{server.address}, database {server.db_file}, log {server.log_file}"
    return _Temporal(server.address, namespace, orch.workflow_task_queue, ui, where)


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=_PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def _temporal_version(address: str, **secured: Any) -> str | None:
    """``Temporal <version>`` if a Temporal frontend answers at ``address`` (connected with
    ``secured``: ``tls`` and ``api_key``), else None."""

    async def ask() -> str:
        from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

        from belugaflow.temporal._connect import connect

        client = await asyncio.wait_for(
            connect(address, namespace=DEFAULTS.temporal_namespace, **secured), _PROBE_TIMEOUT
        )
        info = await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=_PROBE_TIMEOUT)
        )
        return f"Temporal {info.server_version}" if info.server_version else "Temporal"

    try:
        return asyncio.run(ask())
    except Exception:  # refused, not gRPC, not Temporal, timed out: not a server we can use
        return None


def _ensure_namespace(address: str, namespace: str, **secured: Any) -> None:
    """Register ``namespace`` at ``address`` unless it exists; return once it answers."""

    async def ensure() -> None:
        from belugaflow.temporal._connect import connect
        from belugaflow.temporal._namespaces import ensure_namespace

        client = await connect(address, namespace=DEFAULTS.temporal_namespace, **secured)
        await ensure_namespace(client, namespace)

    try:
        asyncio.run(ensure())
    except Exception as error:
        raise _Failed(f"cannot use namespace {namespace!r} at {address}: {error}") from None


def _existing_ui(host: str, port: int) -> str | None:
    """The web UI of a dev server found at ``host:port`` (its default: port + 1000), if it
    answers there."""
    if port + 1000 > 65535:
        return None
    url = f"http://{host}:{port + 1000}"
    if _status(url) != 200:
        return None
    return f"{url}/namespaces/{UP_NAMESPACE}/workflows"


# --- Ports and readiness --------------------------------------------------------------------


def _port(requested: int | None, configured: int | None, what: str) -> tuple[int, str | None]:
    """The port to give ``what``, and a note if the configured one was taken.

    An explicit port must be free (0 takes a free one); the configured one is used if free,
    else a free one, said in the note.
    """
    if requested is not None:
        if requested == 0:
            return _free_port(), None
        if not _is_free(requested):
            raise _Failed(
                f"port {requested} ({what}) is in use; choose another, or 0 for a free one"
            )
        return requested, None
    if configured and _is_free(configured):
        return configured, None
    port = _free_port()
    note = f"port {configured} ({what}) is in use; using {port} instead" if configured else None
    return port, note


def _is_free(port: int) -> bool:
    try:
        # As the servers bind (SO_REUSEADDR): connections closing on it don't count.
        with socket.create_server((HOST, port)):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(stack: _Stack, checks: dict[str, str]) -> None:
    """Return once every URL of ``checks`` answers 200; fail if a process dies first or after
    :data:`_READY_TIMEOUT` seconds."""
    deadline = time.monotonic() + _READY_TIMEOUT
    waiting = dict(checks)
    while waiting:
        died = stack.dead()
        if died is not None:
            raise _Failed(died)
        for name, url in list(waiting.items()):
            if _status(url) == 200:
                del waiting[name]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(f"{name} ({url})" for name, url in waiting.items())
            raise _Failed(f"not ready after {_READY_TIMEOUT:g} s: {names}; see the logs")
        if waiting:
            time.sleep(_POLL)


def _status(url: str) -> int | None:
    """The HTTP status of a GET of ``url``; None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def _tail(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-_LOG_TAIL_LINES:])


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (nothing if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
