"""A program that embeds ``run_worker`` and has signal handlers of its own; run by
``test_worker_signals.py`` in its own process (a lost SIGTERM handler would end it).

Usage: ``python -m tests.temporal.worker_signals ADDRESS NAMESPACE``. Prints one line per
handler of the program that a signal reached after the worker stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from types import FrameType

from belugaflow import Orchestrator
from belugaflow.temporal import run_worker


async def main(address: str, namespace: str) -> None:
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, reached.set)  # the program's own

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        print("program SIGINT handler", flush=True)

    signal.signal(signal.SIGINT, on_sigint)  # the program's own, set the plain way
    orch = Orchestrator(
        workflow_task_queue=f"signals-{uuid.uuid4().hex[:8]}",
        temporal_address=address,
        temporal_namespace=namespace,
    )

    # 1. The caller owns shutdown through ``stop``.
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    await asyncio.sleep(0.5)
    stop.set()
    await worker
    # 2. No ``stop``: the worker takes the signals the program left alone, here none.
    worker = asyncio.create_task(run_worker(orch))
    await asyncio.sleep(0.5)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(reached.wait(), 5)
    print("program SIGTERM handler", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    sys.stdout.flush()
    os._exit(0)  # the Temporal SDK's exit crash (sdk-python#300)
