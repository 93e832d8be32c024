"""``belugaflow serve``: the REST API of an orchestrator, served by uvicorn."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from belugaflow.cli._output import ExitCode, fail
from belugaflow.cli._target import TargetError, load_orchestrator
from belugaflow.cli._worker import ERROR, AddressOption, AppOption, NamespaceOption, configure_logs
from belugaflow.config import ConfigError, ServerConfig

if TYPE_CHECKING:
    from belugaflow import Orchestrator

__all__ = ["api_settings", "serve"]

SERVER_EXTRA = "pip install 'belugaflow[server]'"
"""The command that installs FastAPI and uvicorn."""


def api_settings(orch: Orchestrator) -> tuple[str, int]:
    """The host and port of the API: the ``server`` section of the app's config (the one
    :meth:`~belugaflow.Orchestrator.from_config` keeps), else its defaults (127.0.0.1, 8000)."""
    server = orch.config.server if orch.config is not None else ServerConfig()
    return server.host, server.port


def serve(
    app: AppOption,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on [default: the app's server.host, 127.0.0.1]."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port to listen on; 0 takes a free one [default: the app's server.port, 8000].",
        ),
    ] = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    task_queue: Annotated[
        str | None,
        typer.Option(help="Task queue the started workflows go to [default: the orchestrator's]."),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Need no API key (as server.auth.enabled: false): everyone acts as one tenant,"
            " so the API listens on 127.0.0.1 only.",
        ),
    ] = False,
) -> None:
    """Serve the REST API of an orchestrator (OpenAPI at /docs) until Ctrl-C or SIGTERM.

    The API starts, signals and reads workflows on the Temporal server the app's
    temporal.address names (or --address); it starts no server of its own, and workers
    (`belugaflow worker`) run the workflows. Every /api/v1 route needs an API key of the
    app's server.auth (`belugaflow keys create`), unless auth is off, explicitly. Exits 0
    after a clean stop, 1 if it cannot start.
    """
    try:
        orch = load_orchestrator(app, search_dir=os.getcwd())
    except (TargetError, ValueError) as error:
        fail(str(error))
    configure_logs(orch)
    orch.temporal_address = address or orch.temporal_address
    orch.temporal_namespace = namespace or orch.temporal_namespace
    orch.workflow_task_queue = task_queue or orch.workflow_task_queue
    try:
        import uvicorn  # noqa: F401  (serving() imports it late; say now that it is missing)

        from belugaflow.server import create_app, serving
    except ImportError as error:
        fail(f"the REST API needs the server extra ({SERVER_EXTRA}): {error}")
    configured_host, configured_port = api_settings(orch)
    host = host or configured_host
    port = configured_port if port is None else port
    try:
        api = create_app(orch, auth="off" if no_auth else None)
    except ConfigError as error:  # no keys, a keys file that is missing or invalid
        fail(str(error))
    except Exception as error:  # the app's own definitions (schemas, graphs) may be invalid
        fail(f"the API for {app} could not be built: {type(error).__name__}: {error}")
    keys = api.state.tenancy.keys
    if keys is None:
        access = "auth off: no API key needed, so it listens on 127.0.0.1 only"
    else:
        tenants = ", ".join(f"{t.name} (namespace {t.namespace!r})" for t in keys.tenants.values())
        access = f"{len(keys)} API keys for tenants {tenants}"

    listening: list[str] = []

    def announce(url: str) -> None:
        listening.append(url)
        typer.echo(
            f"API for {app} at {url} (docs at {url}/docs), Temporal at {orch.temporal_address}"
            f" (namespace {orch.temporal_namespace!r}, task queue"
            f" {orch.workflow_task_queue!r}); {access}; SIGTERM or Ctrl-C stops",
            err=True,
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with serving(api, host=host, port=port) as url:
            announce(url)
            await stop.wait()

    code = ExitCode.OK
    try:
        asyncio.run(run())
    except Exception as error:
        if isinstance(error, OSError) and not listening:  # the port could not be bound
            problem = (
                f"cannot listen on {host}:{port} ({error.strerror or error}); choose another"
                " port (--port, server.port)"
            )
        else:
            problem = f"the API stopped: {type(error).__name__}: {error}"
        typer.echo(f"{ERROR} {problem}", err=True)
        code = ExitCode.INVALID
    else:
        typer.echo("API stopped", err=True)
    sys.stderr.flush()
    sys.stdout.flush()
    # The API's Temporal client: the SDK's native runtime can crash while the interpreter shuts
    # down (sdk-python#300), so leave without running finalizers, as `belugaflow worker` does.
    os._exit(code)
