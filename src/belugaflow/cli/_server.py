"""``belugaflow server ...``: run the embedded Temporal server in the foreground."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from belugaflow.cli._output import fail

if TYPE_CHECKING:
    from belugaflow.temporal import DevServer

__all__ = ["DEFAULT_DB_FILE", "server_app"]

DEFAULT_DB_FILE = Path(".belugaflow") / "temporal.db"
"""Where ``start-dev`` keeps its database unless told otherwise (relative to the working
directory)."""

server_app = typer.Typer(
    help="Run the embedded Temporal server (Temporal's dev server, SQLite persistence).",
    no_args_is_help=True,
)


@server_app.command("start-dev")
def start_dev(
    db_file: Annotated[
        Path,
        typer.Option(
            "--db-file",
            metavar="PATH",
            help="SQLite database of the server; created if missing, reused (with its"
            " workflows) if not.",
        ),
    ] = DEFAULT_DB_FILE,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            metavar="N",
            min=0,
            max=65535,
            help="gRPC port on 127.0.0.1 (0 picks a free port).",
        ),
    ] = 7233,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Serve the web UI.")] = True,
    ui_port: Annotated[
        int | None,
        typer.Option(
            "--ui-port",
            metavar="N",
            min=0,
            max=65535,
            help="Web UI port. Default: --port + 1000 (8233).",
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", metavar="NS", help="Namespace to create and report.")
    ] = "default",
    fast: Annotated[
        bool,
        typer.Option(
            "--fast/--durable",
            help="--durable (default) fsyncs every commit: acknowledged work survives a process"
            " or OS crash. --fast never fsyncs: survives a process crash only; an OS crash or"
            " power loss can lose work and corrupt the file. For tests and benchmarks.",
        ),
    ] = False,
) -> None:
    """Start Temporal's dev server and keep it running until Ctrl-C or SIGTERM.

    Prints the address to connect to once the server answers. Exits 0 after a clean stop, 1 if
    the server cannot start (port in use, binary missing) or dies on its own.
    """
    try:
        from belugaflow.temporal import DevServer, DevServerError, Durability
        from belugaflow.temporal import TemporalBinaryNotFoundError as NotFound
    except ImportError as error:
        fail(str(error))
    if ui_port is None:
        ui_port = port + 1000 if port and port + 1000 <= 65535 else 0
    server = DevServer(
        db_file,
        port=port,
        ui=ui,
        ui_port=ui_port,
        namespace=namespace,
        durability=Durability.FAST if fast else Durability.FULL,
    )
    # SIGTERM stops the server like Ctrl-C does: asyncio and the wait below are interruptible by
    # KeyboardInterrupt, and start() stops the process if it is interrupted before it answers.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            server.start_sync()
        except (DevServerError, NotFound) as error:
            fail(str(error))
        _print_ready(server)
        code = server.wait()
        fail(
            f"the Temporal dev server exited on its own with code {code} (log:"
            f" {server.log_file}); last lines:\n{server.log_tail()}"
        )
    except KeyboardInterrupt:
        server.stop_sync()
        typer.echo("Temporal dev server stopped.")
    finally:
        server.stop_sync()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _print_ready(server: DevServer) -> None:
    typer.echo(f"Temporal dev server ready at {server.address} (namespace {server.namespace})")
    rows = [
        ("database", f"{server.db_file} (durability {server.durability.value})"),
        ("web UI", server.ui_url or "off"),
        ("log", str(server.log_file)),
    ]
    for key, value in rows:
        typer.echo(f"  {key.ljust(8)}  {value}")
    typer.echo("Press Ctrl-C to stop.")
