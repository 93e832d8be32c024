"""Run a worker for an orchestrator until SIGTERM/SIGINT, then drain and exit."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.worker import Worker

from ._engine import graph_worker

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator

__all__ = ["create_worker", "run_worker"]


def create_worker(
    client: Client, orch: Orchestrator, *, task_queue: str | None = None, **options: Any
) -> Worker:
    """A worker for everything ``orch`` holds: its graphs' nodes and routers, and the
    workflows and activities registered with it. The task queue defaults to the
    orchestrator's (``orchestration.workflow.task_queue``).

    The worker encodes and decodes payloads with ``client``'s data converter: pass
    ``await orch.client()`` (as :func:`run_worker` does) so that it is the orchestrator's
    (:attr:`~belugaflow.Orchestrator.data_converter`), the one its starts and results use.
    """
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
    try:
        async with create_worker(client, orch, task_queue=task_queue, **options):
            await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


# What a signal's handler is when the program set none (SIGINT's raises KeyboardInterrupt).
_DEFAULT_HANDLERS = (signal.SIG_DFL, signal.default_int_handler, None)
