"""A changed workflow keeps running old histories: ``workflow.patched()`` for hand-written code
(``examples/versioning``), and a graph run keeps the spec version it started with."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer, Worker
from tests.histories.changed import UnguardedShipOrder

from belugaflow import Graph, Orchestrator
from belugaflow.temporal import TemporalEngine, create_worker
from examples.versioning import v1, v2
from examples.versioning.activities import ACTIVITIES

WAIT = 20.0  # seconds: an upper bound for anything a test awaits, so a bug fails, not hangs


async def wait_for_steps(handle: WorkflowHandle[Any, list[str]], steps: list[str]) -> None:
    """Poll the ``steps`` query until the run has done exactly ``steps``."""
    deadline = time.monotonic() + WAIT
    while (done := await handle.query(v1.ShipOrder.steps)) != steps:
        assert time.monotonic() < deadline, f"still at {done} after {WAIT} s"
        await asyncio.sleep(0.05)


async def test_patched_keeps_an_open_v1_run_on_its_path(temporal_client: Client) -> None:
    """A v1 run waiting for its signal replays under v2 and finishes on v1's path on a v2
    worker; a new run takes v2's path; the change without ``patched()`` fails replay."""
    queue = f"versioning-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_client, task_queue=queue, workflows=[v1.ShipOrder], activities=ACTIVITIES
    ):
        old = await temporal_client.start_workflow(
            v1.ShipOrder.run, "o-1", id=f"ship-o-1-{queue}", task_queue=queue
        )
        await wait_for_steps(old, ["packed o-1"])
    history = await old.fetch_history()

    await Replayer(workflows=[v2.ShipOrder]).replay_workflow(history)
    with pytest.raises(workflow.NondeterminismError):
        await Replayer(workflows=[UnguardedShipOrder]).replay_workflow(history)

    # The deployment: a v2 worker takes over the queue, old run included.
    async with Worker(
        temporal_client, task_queue=queue, workflows=[v2.ShipOrder], activities=ACTIVITIES
    ):
        await old.signal(v2.ShipOrder.confirm)
        assert await asyncio.wait_for(old.result(), WAIT) == ["packed o-1", "shipped o-1"]

        new = await temporal_client.start_workflow(
            v2.ShipOrder.run, "o-2", id=f"ship-o-2-{queue}", task_queue=queue
        )
        await new.signal(v2.ShipOrder.confirm)
        assert await asyncio.wait_for(new.result(), WAIT) == [
            "address checked o-2",
            "packed o-2",
            "shipped o-2",
        ]


# --- graph spec versions -------------------------------------------------------------------------


def ship(state: Any) -> dict[str, Any]:
    """Shared by both versions: a module-level function has one registry key."""
    return {"path": ["ship"]}


async def test_a_graph_run_finishes_on_the_version_it_started_with(
    temporal_client: Client,
) -> None:
    """A v1 run blocked in its first node while v2 of the same graph is built and run ends on
    v1's path; the v2 run on v2's; each run's memo names its graph and version."""
    orch = Orchestrator(workflow_task_queue=f"graph-versions-{uuid.uuid4().hex[:8]}")
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(state: Any) -> dict[str, Any]:
        held.set()
        await release.wait()
        return {"path": ["v1.hold"]}

    def fulfil(version: int) -> Graph:
        graph = orch.create_graph("fulfil", version=version)
        return graph.set_reducer("path", "append")

    first = fulfil(1)
    first.add_node("hold", hold)
    first.add_node("pack", lambda s: {"path": ["v1.pack"]})
    first.add_node("ship", ship)
    first.add_edge("hold", "pack").add_edge("pack", "ship")
    first.set_entry_point("hold").set_finish_point("ship")

    engine = TemporalEngine(temporal_client, task_queue=orch.workflow_task_queue)
    ids = [f"fulfil-v1-{orch.workflow_task_queue}", f"fulfil-v2-{orch.workflow_task_queue}"]
    async with create_worker(temporal_client, orch):
        started = asyncio.create_task(engine.run(first, {"path": []}, id=ids[0]))
        await asyncio.wait_for(held.wait(), WAIT)

        # Version 2, built and registered while the v1 run is in flight.
        second = fulfil(2)
        second.add_node("check", lambda s: {"path": ["v2.check"]})
        second.add_node("pack", lambda s: {"path": ["v2.pack"]})
        second.add_node("ship", ship)
        second.add_edge("check", "pack").add_edge("pack", "ship")
        second.set_entry_point("check").set_finish_point("ship")
        assert (await engine.run(second, {"path": []}, id=ids[1]))["path"] == [
            "v2.check",
            "v2.pack",
            "ship",
        ]

        assert not started.done()
        release.set()
        assert (await asyncio.wait_for(started, WAIT))["path"] == ["v1.hold", "v1.pack", "ship"]

    for version, workflow_id in enumerate(ids, start=1):
        description = await temporal_client.get_workflow_handle(workflow_id).describe()
        assert await description.memo() == {"graph": "fulfil", "version": version}
