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
        workflows=orch.workflows,
        activities=orch.activities,
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
    """Poll until SIGTERM or SIGINT (or ``stop`` is set); then stop taking new work, let
    in-flight activities finish (up to the graceful shutdown timeout) and return.

    Several workers on one task queue share its work; any of them continues a run that another
    started. Without ``client``, the orchestrator's own (:meth:`~belugaflow.Orchestrator.client`)
    is used, and with it the orchestrator's data converter. This is what ``belugaflow worker
    --app MODULE:ORCH`` runs.
    """
    client = client or await orch.client()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with create_worker(client, orch, task_queue=task_queue, **options):
            await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
