"""W5 ``temporal_order``: a 4-step flow on the embedded dev server, as a raw temporalio
workflow and as a graph on ``GraphWorkflow``, measured side by side in one run.

Both run against one ``DevServer`` with the embedded default's durability (``FULL``) and one
worker in this process; each reports one workflow's end-to-end latency and a burst of
workflows started at once (completed workflows/s, p50/p90 latency).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from belugaflow import Orchestrator
from belugaflow.temporal import DevServer, Durability, TemporalEngine, graph_worker

__all__ = ["w5"]

STEPS = 4


@activity.defn(name="bench.step")
async def step(value: str) -> str:
    """A trivial activity."""
    return value


@workflow.defn(name="bench.RawOrder", sandboxed=False)
class RawOrder:
    """The raw SDK baseline: four activities in a row."""

    @workflow.run
    async def run(self, value: str) -> str:
        for _ in range(STEPS):
            value = await workflow.execute_activity(
                step, value, start_to_close_timeout=timedelta(seconds=30)
            )
        return value


def _noop(state: Any) -> None:
    return None


async def _measure(run_one: Callable[[], Awaitable[Any]], burst: int) -> dict[str, float]:
    await run_one()  # warm-up
    single = []
    for _ in range(5):
        start = time.perf_counter()
        await run_one()
        single.append(time.perf_counter() - start)
    latencies: list[float] = []

    async def timed() -> None:
        start = time.perf_counter()
        await run_one()
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(timed() for _ in range(burst)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "single_ms": round(statistics.median(single) * 1e3, 1),
        "per_s": round(burst / wall, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1e3),
        "p90_ms": round(latencies[int(len(latencies) * 0.9)] * 1e3),
    }


async def _w5(burst: int) -> list[dict[str, Any]]:
    async with DevServer(durability=Durability.FULL) as server:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue="bench-raw", workflows=[RawOrder], activities=[step]):
            raw = await _measure(
                lambda: client.execute_workflow(
                    RawOrder.run, "x", id=uuid.uuid4().hex, task_queue="bench-raw"
                ),
                burst,
            )
        orch = Orchestrator()
        graph = orch.create_graph("order4")
        names = [f"step{i}" for i in range(STEPS)]
        for name in names:
            graph.add_node(name, _noop)
        for a, b in itertools.pairwise(names):
            graph.add_edge(a, b)
        graph.set_entry_point(names[0]).set_finish_point(names[-1])
        engine = TemporalEngine(client, task_queue="bench-graph")
        async with graph_worker(client, task_queue="bench-graph", registry=orch.registry):
            ours = await _measure(lambda: engine.run(graph, {}), burst)
    return [
        {"workload": "W5", "name": "temporal_order", "impl": "raw temporalio", "burst": burst,
         "unit": "workflows/s", **raw},
        {"workload": "W5", "name": "temporal_order", "impl": "GraphWorkflow", "burst": burst,
         "unit": "workflows/s", **ours, "ratio_to_raw": round(ours["per_s"] / raw["per_s"], 2),
         "target_ratio": 0.95, "meets_target": ours["per_s"] / raw["per_s"] >= 0.95},
    ]  # fmt: skip


def w5(quick: bool) -> list[dict[str, Any]]:
    """Run W5: 500 workflows at once (50 with ``quick``)."""
    return asyncio.run(_w5(50 if quick else 500))
