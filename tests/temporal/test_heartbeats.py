"""A dead worker is noticed in seconds: durable nodes heartbeat, so a node whose worker was
SIGKILLed is retried on another worker after the heartbeat timeout, not after its attempt's
time limit (the run's timeout, 600 s by default)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.client import Client
from tests.temporal import heartbeat_app
from tests.temporal.fault_app import worker_pool

from belugaflow import Orchestrator
from belugaflow.temporal import DevServer
from belugaflow.temporal._engine import TemporalEngine

APP = "tests.temporal.heartbeat_app:orch"
WAIT = 60.0


async def test_a_killed_workers_nodes_finish_on_another_worker_within_seconds(
    temporal_server: DevServer, temporal_client: Client, tmp_path: Path
) -> None:
    """Two minute-long nodes (one blocking, one async) run on worker 1; it is SIGKILLed after
    5 s; worker 2 runs both again and the run ends well inside a node's own duration."""
    queue = f"heartbeats-{uuid.uuid4().hex[:8]}"
    with worker_pool(
        APP,
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=queue,
        logs=tmp_path,
        env={heartbeat_app.DIR_ENV: str(tmp_path)},
    ) as start_worker:
        first = start_worker()
        engine = TemporalEngine(temporal_client, task_queue=queue, heartbeat_timeout=2.0)
        graph = heartbeat_app.build_graph(Orchestrator())
        run = asyncio.create_task(engine.run(graph, {"run": "r1"}, id=f"long-{queue}"))
        marks = [tmp_path / "r1.blocking", tmp_path / "r1.async"]
        deadline = time.monotonic() + WAIT
        while not all(mark.exists() for mark in marks):
            assert time.monotonic() < deadline, first.output()
            assert not run.done(), run
            await asyncio.sleep(0.05)
        await asyncio.sleep(5)
        first.kill()
        killed_at = time.monotonic()
        second = start_worker()
        state = await asyncio.wait_for(run, WAIT)
        recovered_in = time.monotonic() - killed_at
    assert state["blocking"] == [first.pid, second.pid]
    assert state["async"] == [first.pid, second.pid]
    # Heartbeat timeout (2 s) + retry + the workflow task's move off the dead worker's sticky
    # queue (up to 10 s): far below the 60 s the nodes would have taken.
    assert recovered_in < heartbeat_app.NODE_SECONDS / 2, recovered_in
