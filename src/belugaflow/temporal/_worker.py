"""Run a worker for an orchestrator until SIGTERM/SIGINT, then drain and exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.worker import Worker, WorkerDeploymentConfig, WorkerDeploymentVersion

from ..config import TemporalWorkerConfig
from ._deployments import routing_note
from ._engine import graph_worker
from ._namespaces import ensure_namespace, in_namespace

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator

__all__ = ["create_worker", "run_worker"]

logger = logging.getLogger("belugaflow.worker")


def create_worker(
    client: Client, orch: Orchestrator, *, task_queue: str | None = None, **options: Any
) -> Worker:
    """A worker for everything ``orch`` holds: its graphs' nodes and routers, and the
    workflows and activities registered with it. The task queue defaults to the
    orchestrator's (``orchestration.workflow.task_queue``).

    The worker encodes and decodes payloads with ``client``'s data converter: pass
    ``await orch.client()`` (as :func:`run_worker` does) so that it is the orchestrator's
    (:attr:`~belugaflow.Orchestrator.data_converter`), the one its starts and results use.
    With tracing on (:attr:`~belugaflow.Orchestrator.tracing`), the worker carries the trace
    of every workflow and activity it runs on, even on a client connected without it.

    Its limits, graceful shutdown and worker deployment version come from
    :attr:`~belugaflow.Orchestrator.temporal_worker` (``temporal.worker``); ``options`` given
    here win.
    """
    defaults = worker_options(orch.temporal_worker or TemporalWorkerConfig())
    if "tuner" in options:  # a tuner sets the slots itself; the SDK refuses both
        del defaults["max_concurrent_activities"], defaults["max_concurrent_workflow_tasks"]
    for name, value in defaults.items():
        options.setdefault(name, value)
    if orch.tracing is not None:
        from ._tracing import worker_interceptors

        tracing = worker_interceptors(orch.tracing, client)
        options["interceptors"] = [*options.get("interceptors", ()), *tracing]
    return graph_worker(
        client,
        task_queue=task_queue or orch.workflow_task_queue,
        registry=orch.registry,
        breakers=orch.breakers,
        hooks=orch.hooks,
        workflows=orch.workflows,
        activities=orch.activities,
        heartbeat_timeout=orch.heartbeat_timeout,
        **options,
    )


async def run_worker(
    orch: Orchestrator,
    *,
    client: Client | None = None,
    task_queue: str | None = None,
    stop: asyncio.Event | None = None,
    metrics_port: int | None = None,
    on_serving: Callable[[str], None] | None = None,
    namespaces: Sequence[str] = (),
    **options: Any,
) -> None:
    """Poll until ``stop`` is set — or, without ``stop``, until SIGTERM or SIGINT — then stop
    taking new work, let in-flight activities finish (up to the graceful shutdown timeout) and
    return.

    Signals: given ``stop``, the caller owns shutdown and no signal handler is touched. Without
    it, the worker handles SIGTERM and SIGINT while it runs, each only if the program has no
    handler of its own for it (a handler the program set stays in place, and stays its own), and
    removes what it installed when it returns.

    Several workers on one task queue share its work; any of them continues a run that another
    started. Without ``client``, the orchestrator's own (:meth:`~belugaflow.Orchestrator.client`)
    is used, and with it the orchestrator's data converter. This is what ``belugaflow worker
    --app MODULE:ORCH`` runs.

    With ``metrics_port``, the worker also serves :meth:`~belugaflow.Orchestrator.metrics_app`
    there (on ``orch.metrics_host``; 0 takes a free port): ``/metrics``, ``/healthz``, and
    ``/readyz`` with the checks ``temporal`` (the server answers) and ``worker`` (it polls).
    ``on_serving`` is called with the base URL once it listens.

    With ``namespaces`` (the tenants' of ``server.auth``), the process polls the task queue
    in each of them too, one worker per namespace over the same connection, creating a
    namespace that does not exist yet.

    With tracing on, the spans still batched are delivered before it returns (waiting at most
    a few seconds for an endpoint that is down), so a worker stopped by SIGTERM loses none.
    """
    client = client or await orch.client()
    installed: list[signal.Signals] = []
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(signum) in _DEFAULT_HANDLERS:
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
    workers = [create_worker(client, orch, task_queue=task_queue, **options)]
    for namespace in dict.fromkeys(namespaces):
        if namespace != client.namespace:
            other = in_namespace(client, namespace)
            await ensure_namespace(other, namespace)
            view = orch.in_namespace(namespace)
            view.use_client(other)
            workers.append(create_worker(other, view, task_queue=task_queue, **options))
    server = None
    try:
        if metrics_port is not None:
            server = await _serve_monitoring(orch, client, workers, metrics_port, on_serving)
        async with contextlib.AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            await _say_routing(client, orch.temporal_worker)
            await stop.wait()
    finally:
        if server is not None:
            await server.stop()
        for signum in installed:
            loop.remove_signal_handler(signum)
        if orch.tracing is not None:  # `belugaflow worker` leaves by os._exit: no atexit
            await asyncio.to_thread(orch.tracing.flush)


async def _say_routing(client: Client, settings: TemporalWorkerConfig | None) -> None:
    if settings is None or settings.deployment is None or settings.build_id is None:
        return
    reached, note = await routing_note(client, settings.deployment, settings.build_id)
    logger.log(logging.INFO if reached else logging.WARNING, "%s", note)


def worker_options(settings: TemporalWorkerConfig) -> dict[str, Any]:
    """``Worker`` options for ``temporal.worker``."""
    options: dict[str, Any] = {
        "max_concurrent_activities": settings.max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.max_concurrent_workflow_tasks,
        # Sync activities an app registers run here: one thread per slot, so none waits.
        "activity_executor": ThreadPoolExecutor(max_workers=settings.max_concurrent_activities),
        "graceful_shutdown_timeout": settings.graceful_shutdown,
    }
    if settings.deployment is not None and settings.build_id is not None:
        options["deployment_config"] = WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(settings.deployment, settings.build_id),
            use_worker_versioning=True,
            default_versioning_behavior=_BEHAVIORS[settings.versioning],
        )
    return options


_BEHAVIORS = {
    "pinned": VersioningBehavior.PINNED,
    "auto_upgrade": VersioningBehavior.AUTO_UPGRADE,
}

# What a signal's handler is when the program set none (SIGINT's raises KeyboardInterrupt).
_DEFAULT_HANDLERS = (signal.SIG_DFL, signal.default_int_handler, None)


class _Monitoring:
    """The orchestrator's monitoring app, served by uvicorn beside the worker."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> str:
        # Bound here, so a taken port is an OSError of ours (uvicorn would exit the process).
        listening = socket.create_server((host, port))
        self.task = asyncio.create_task(self.server.serve(sockets=[listening]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise OSError("the monitoring server stopped while starting")
            await asyncio.sleep(0.01)
        bound_host, bound_port = listening.getsockname()[:2]
        return f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


async def _serve_monitoring(
    orch: Orchestrator,
    client: Client,
    workers: Sequence[Worker],
    port: int,
    on_serving: Callable[[str], None] | None,
) -> _Monitoring:
    async def temporal() -> None:
        await client.service_client.check_health()

    async def polling() -> None:
        for worker in workers:
            if not worker.is_running or worker.is_shutdown:
                raise RuntimeError(
                    f"the worker is not polling task queue {worker.task_queue!r} (namespace"
                    f" {worker.client.namespace!r})"
                )

    monitoring = _Monitoring(orch.metrics_app({"temporal": temporal, "worker": polling}))
    try:
        url = await monitoring.start(orch.metrics_host, port)
    except OSError as error:
        raise OSError(
            f"cannot serve metrics on {orch.metrics_host}:{port} ({error.strerror or error});"
            " choose another port (monitoring.metrics.port, --metrics-port) or none"
        ) from None
    if on_serving is not None:
        on_serving(url)
    return monitoring
