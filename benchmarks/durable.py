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


class _Impl:
    """One side of the comparison: how to run one workflow, and what its runs measured."""

    def __init__(self, run_one: Callable[[], Awaitable[Any]]) -> None:
        self.run_one = run_one
        self.single: list[float] = []
        self.latencies: list[float] = []
        self.wall = 0.0

    async def warm_up_and_time_one(self) -> None:
        for _ in range(3):  # caches, sticky queues, first-use imports
            await self.run_one()
        for _ in range(10):
            start = time.perf_counter()
            await self.run_one()
            self.single.append(time.perf_counter() - start)

    async def burst(self, size: int) -> None:
        """Start ``size`` workflows at once and wait for all of them."""

        async def timed() -> None:
            start = time.perf_counter()
            await self.run_one()
            self.latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(timed() for _ in range(size)))
        self.wall += time.perf_counter() - start

    def summary(self) -> dict[str, float]:
        latencies = sorted(self.latencies)
        return {
            "single_ms": round(statistics.median(self.single) * 1e3, 1),
            "per_s": round(len(latencies) / self.wall, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1e3),
            "p90_ms": round(latencies[int(len(latencies) * 0.9)] * 1e3),
        }


def _raw_run(client: Client, workflow_run: Any) -> Callable[[], Awaitable[Any]]:
    async def run_one() -> Any:
        return await client.execute_workflow(
            workflow_run,
            "x",
            id=uuid.uuid4().hex,
            task_queue="bench-raw",
            execution_timeout=RUN_TIMEOUT,
            request_eager_start=True,
        )

    return run_one


async def _compare(raw: _Impl, ours: _Impl, burst: int) -> None:
    """Both sides, bursts in the order raw, ours, ours, raw: the server slows down as its
    database grows, and this order cancels a steady drift instead of charging it to one side."""
    await raw.warm_up_and_time_one()
    await ours.warm_up_and_time_one()
    for side in (raw, ours, ours, raw):
        await side.burst(burst)


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
                raw = _Impl(_raw_run(client, raw_run))
                ours = _Impl(functools.partial(engine.run, order_graph(orch, short=short), {}))
                await _compare(raw, ours, burst)
                raw_s, ours_s = raw.summary(), ours.summary()
                ratio = ours_s["per_s"] / raw_s["per_s"]
                common = {
                    "workload": "W5",
                    "name": "temporal_order",
                    "steps": flavour,
                    "burst": burst,
                    "bursts": 2,
                    "unit": "workflows/s",
                    "durability": server.durability.value,
                }
                records += [
                    {**common, "impl": "raw temporalio", **raw_s},
                    {**common, "impl": "GraphWorkflow", **ours_s, "ratio_to_raw": round(ratio, 2),
                     "target_ratio": 0.95, "meets_ratio": ratio >= 0.95},
                ]  # fmt: skip
    return records


def w5(quick: bool) -> list[dict[str, Any]]:
    """Run W5: bursts of 500 workflows at once (50 with ``quick``), two per side."""
    return asyncio.run(_w5(50 if quick else 500))
