"""``belugaflow worker``: run a Temporal worker for an orchestrator."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Annotated

import typer

from belugaflow import Orchestrator
from belugaflow.cli._fleet import MAX_PROCESSES, run_fleet
from belugaflow.cli._output import ExitCode, fail
from belugaflow.cli._target import TargetError, load_orchestrator
from belugaflow.config import Config, ConfigError, TemporalWorkerConfig, load_config
from belugaflow.monitoring import configure_logging_from_config

__all__ = ["configure_logs", "worker"]

ERROR = typer.style("error:", fg="red", bold=True)

# Options every command that loads an app and talks to Temporal takes (worker, serve).
AppOption = Annotated[
    str,
    typer.Option(
        "--app",
        help="MODULE:OBJECT of your Orchestrator (or a zero-argument factory returning one),"
        " e.g. myapp.flows:orch",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(help="Temporal frontend host:port [default: the orchestrator's]."),
]
NamespaceOption = Annotated[
    str | None, typer.Option(help="Temporal namespace [default: the orchestrator's].")
]


def worker(
    app: AppOption,
    task_queue: Annotated[
        str | None,
        typer.Option(help="Task queue to poll [default: the orchestrator's]."),
    ] = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=-1,
            max=65535,
            help="Port of /metrics, /healthz and /readyz; 0 takes a free one, -1 serves none"
            " [default: the orchestrator's, monitoring.metrics.port, 9464].",
        ),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(
            help="Worker deployment name, for worker versioning"
            " [default: temporal.worker.deployment]."
        ),
    ] = None,
    build_id: Annotated[
        str | None,
        typer.Option(
            help="This build's id in the deployment, e.g. a git commit"
            " [default: temporal.worker.build_id].",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_PROCESSES,
            help="Worker processes to run: more than 1 makes this a supervisor that starts"
            " them (metrics port P+i for worker i), forwards SIGTERM and restarts crashed ones.",
        ),
    ] = 1,
) -> None:
    """Run a worker: the orchestrator's graphs, workflows and activities, until SIGTERM.

    On SIGTERM or Ctrl-C the worker stops polling, lets running activities finish, and exits.
    Start several on one task queue to share the work.
    """
    try:
        orch = load_orchestrator(app, search_dir=os.getcwd())
    except (TargetError, ValueError) as error:
        fail(str(error))
    configure_logs(orch)
    orch.temporal_address = address or orch.temporal_address
    orch.temporal_namespace = namespace or orch.temporal_namespace
    queue = task_queue or orch.workflow_task_queue
    if deployment or build_id:
        orch.temporal_worker = versioned(orch, deployment, build_id)
    try:
        from belugaflow.temporal._worker import run_worker
    except ImportError as error:
        fail(f"{error}; install the extra: pip install 'belugaflow[temporal]'")
    if processes > 1:  # checked the app and flags once; now a supervisor of N copies
        run_fleet(orch, processes, metrics_port)
    # The tenants' namespaces too: the REST API starts each tenant's runs in its own.
    tenants = orch.config.server.auth.namespaces() if orch.config is not None else {}
    namespaces = [orch.temporal_namespace, *tenants.values()]
    typer.echo(
        f"worker for {app}: polling task queue {queue!r} at {orch.temporal_address}"
        f" (namespace {', '.join(map(repr, dict.fromkeys(namespaces)))});"
        " SIGTERM or Ctrl-C drains and stops",
        err=True,
    )
    settings = orch.temporal_worker
    if settings is not None and settings.deployment is not None:
        typer.echo(
            f"worker deployment {settings.deployment!r}, build {settings.build_id!r}:"
            f" {_BEHAVIOUR[settings.versioning]}",
            err=True,
        )
    port = orch.metrics_port if metrics_port is None else metrics_port
    code = ExitCode.OK

    def serving(url: str) -> None:
        typer.echo(f"metrics at {url}/metrics, health at {url}/healthz and {url}/readyz", err=True)

    try:
        asyncio.run(
            run_worker(
                orch,
                task_queue=queue,
                metrics_port=None if port == -1 else port,
                on_serving=serving,
                namespaces=namespaces,
            )
        )
    except Exception as error:  # the server cannot be reached, the app's activities are invalid
        typer.echo(f"{ERROR} worker stopped: {type(error).__name__}: {error}", err=True)
        code = ExitCode.INVALID
    else:
        typer.echo("worker drained and stopped", err=True)
    sys.stderr.flush()
    sys.stdout.flush()
    # The Temporal SDK's native runtime can crash while the interpreter shuts down
    # (sdk-python#300), so once it has started, leave without running finalizers.
    os._exit(code)


_BEHAVIOUR = {
    "pinned": "runs finish on the build they started on (pinned)",
    "auto_upgrade": "runs move to the current build (auto-upgrade)",
}


def versioned(
    orch: Orchestrator, deployment: str | None, build_id: str | None
) -> TemporalWorkerConfig:
    """The orchestrator's ``temporal.worker`` settings with the flags' deployment version."""
    settings = orch.temporal_worker or TemporalWorkerConfig()
    deployment = deployment or settings.deployment
    build_id = build_id or settings.build_id
    if deployment is None or build_id is None:
        fail(
            "worker versioning needs both a deployment and a build id:"
            " --deployment and --build-id (or temporal.worker.deployment and build_id)"
        )
    return settings.model_copy(update={"deployment": deployment, "build_id": build_id})


def configure_logs(orch: Orchestrator) -> None:
    """Log as ``monitoring.logging`` of the app's config says (the config an orchestrator made
    by ``Orchestrator.from_config`` keeps), or else of the defaults with the environment's
    ``BELUGAFLOW__MONITORING__LOGGING__*`` overrides; an app that set up logging itself (the
    root logger has a handler) keeps its own."""
    if logging.getLogger().handlers:
        return
    config = orch.config
    if config is None:
        try:
            config = load_config()
        except ConfigError as error:
            typer.echo(f"warning: logging with the defaults: {error}", err=True)
            config = Config()
    configure_logging_from_config(config)
