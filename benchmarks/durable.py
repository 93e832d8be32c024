"""W5 ``temporal_order``: a 4-step flow on the embedded dev server, as a raw temporalio
workflow and as a graph on ``GraphWorkflow``, measured side by side in one run.

Every variant runs against one ``DevServer`` with the embedded default's settings (a SQLite
file, the default durability) and one worker in this process, in two flavours: the four steps as
activities, and as local activities (for the graph: nodes marked ``short=True``). Each reports
one workflow's end-to-end latency and a burst of workflows started at once (completed
workflows/s, p50/p90 latency); the graph's figures are also given as a ratio to the raw SDK's in
the same flavour.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from belugaflow import Orchestrator
from belugaflow.graph import CompiledGraph
from belugaflow.temporal import DevServer, TemporalEngine, graph_worker

__all__ = ["w5"]

STEPS = 4
TIMEOUT = timedelta(seconds=30)
RUN_TIMEOUT = timedelta(minutes=10)
"""The whole-run limit of both: a graph's default ``timeout`` becomes the workflow's execution
timeout (a server-side timer, ~5% of a burst's throughput), so the raw workflow gets it too."""


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
            value = await workflow.execute_activity(step, value, start_to_close_timeout=TIMEOUT)
        return value


@workflow.defn(name="bench.RawOrderLocal", sandboxed=False)
class RawOrderLocal:
    """The raw SDK baseline with local activities."""

    @workflow.run
    async def run(self, value: str) -> str:
        for _ in range(STEPS):
            value = await workflow.execute_local_activity(
                step, value, start_to_close_timeout=TIMEOUT
            )
        return value


def _noop(state: Any) -> None:
    return None


def order_graph(orch: Orchestrator, *, short: bool) -> CompiledGraph:
    """The same four steps as a graph (``short``: local activities)."""
    graph = orch.create_graph("order4-short" if short else "order4", timeout=RUN_TIMEOUT)
    names = [f"step{i}" for i in range(STEPS)]
    for name in names:
        graph.add_node(name, _noop, short=short)
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    return graph.set_entry_point(names[0]).set_finish_point(names[-1]).compile()


async def _measure(run_one: Callable[[], Awaitable[Any]], burst: int) -> dict[str, float]:
    for _ in range(3):  # warm-up: caches, sticky queues, JIT-free but import-heavy first runs
        await run_one()
    single = []
    for _ in range(10):
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


async def _raw(client: Client, workflow_run: Any, burst: int) -> dict[str, float]:
    return await _measure(
        lambda: client.execute_workflow(
            workflow_run,
            "x",
            id=uuid.uuid4().hex,
            task_queue="bench-raw",
            execution_timeout=RUN_TIMEOUT,
            request_eager_start=True,
        ),
        burst,
    )


async def _w5(burst: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as data:
        return await _w5_on(DevServer(Path(data) / "temporal.db"), burst)


async def _w5_on(server: DevServer, burst: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    async with server:
        client = await Client.connect(server.address)
        orch = Orchestrator()
        engine = TemporalEngine(client, task_queue="bench-graph")
        async with (
            Worker(
                client,
                task_queue="bench-raw",
                workflows=[RawOrder, RawOrderLocal],
                activities=[step],
            ),
            graph_worker(client, task_queue="bench-graph", registry=orch.registry),
        ):
            for flavour, raw_run, short in (
                ("activities", RawOrder.run, False),
                ("local activities", RawOrderLocal.run, True),
            ):
                raw = await _raw(client, raw_run, burst)
                graph = order_graph(orch, short=short)
                ours = await _measure(functools.partial(engine.run, graph, {}), burst)
                ratio = ours["per_s"] / raw["per_s"]
                common = {
                    "workload": "W5",
                    "name": "temporal_order",
                    "steps": flavour,
                    "burst": burst,
                    "unit": "workflows/s",
                    "durability": server.durability.value,
                }
                records += [
                    {**common, "impl": "raw temporalio", **raw},
                    {**common, "impl": "GraphWorkflow", **ours, "ratio_to_raw": round(ratio, 2),
                     "target_ratio": 0.95, "meets_ratio": ratio >= 0.95},
                ]  # fmt: skip
    return records


def w5(quick: bool) -> list[dict[str, Any]]:
    """Run W5: 500 workflows at once (50 with ``quick``)."""
    return asyncio.run(_w5(50 if quick else 500))
