"""W8's worker, run in its own process so that its peak RSS is its own::

    python -m benchmarks.w8_worker ADDRESS TASK_QUEUE [--max-cached N] [--max-tasks N]
        [--sticky-timeout SECONDS]

A belugaflow worker (``create_worker``) serving one plain temporalio workflow that waits for a
signal: a graph node cannot wait for a signal, so W8 is not a ``GraphWorkflow``. Prints
``ready`` once it polls; drains and exits when its stdin closes (the parent is done, or died)
or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client

from belugaflow import Orchestrator
from belugaflow.temporal import create_worker

__all__ = ["SIGNAL", "WORKFLOW", "WaitForSignal"]

WORKFLOW = "bench.WaitForSignal"
SIGNAL = "go"


@workflow.defn(name=WORKFLOW)
class WaitForSignal:
    """Waits for the ``go`` signal and returns its value."""

    def __init__(self) -> None:
        self._value: str | None = None

    @workflow.signal(name=SIGNAL)
    def go(self, value: str) -> None:
        self._value = value

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._value is not None)
        assert self._value is not None
        return self._value


async def serve(
    address: str, task_queue: str, max_cached: int, max_tasks: int, sticky_timeout: float
) -> None:
    orch = Orchestrator()
    orch.register_workflow(WaitForSignal)
    client = await Client.connect(address)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or is gone
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    worker = create_worker(
        client,
        orch,
        task_queue=task_queue,
        max_cached_workflows=max_cached,
        max_concurrent_workflow_tasks=max_tasks,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=sticky_timeout),
    )
    async with worker:
        print("ready", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w8_worker")
    parser.add_argument("address")
    parser.add_argument("task_queue")
    parser.add_argument("--max-cached", type=int, default=1000, help="max_cached_workflows")
    parser.add_argument("--max-tasks", type=int, default=100, help="max_concurrent_workflow_tasks")
    parser.add_argument(
        "--sticky-timeout",
        type=float,
        default=10.0,
        help="sticky_queue_schedule_to_start_timeout in seconds",
    )
    args = parser.parse_args()
    code = 0
    try:
        asyncio.run(
            serve(
                args.address, args.task_queue, args.max_cached, args.max_tasks, args.sticky_timeout
            )
        )
    except Exception as error:
        print(f"w8_worker: {type(error).__name__}: {error}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's native runtime can crash at interpreter exit (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
