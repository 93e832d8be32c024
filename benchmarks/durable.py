"""W5 ``temporal_order``: a 4-step flow on the embedded dev server, as a raw temporalio
workflow and as a graph on ``GraphWorkflow``, measured side by side in one run.

Two flavours: the four steps as activities, and as local activities (for the graph: nodes
marked ``short=True``). Each flavour runs in rounds of both sides, the side that goes first
alternating; each side of a round gets a fresh ``DevServer`` with the embedded default's settings
(a SQLite file, durability ``FULL``) and one worker in this process, and runs ten single
workflows (end-to-end latency), then a burst of workflows started at once (completed
workflows/s, p50/p90 latency, CPU per workflow of this process and of the server). The graph's
rate is given as the median of its per-round ratios to the raw SDK's, and its CPU as a ratio
too.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
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
TARGET = 0.97
"""The graph's rate as a fraction of the raw SDK's, at least."""
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


class _Side:
    """What one side of the comparison measured, over all rounds."""

    def __init__(self) -> None:
        self.single: list[float] = []
        self.latencies: list[float] = []
        self.rates: list[float] = []
        """Completed workflows/s of each round's burst."""
        self.worker_cpu = 0.0
        self.server_cpu = 0.0
        self.runs = 0

    async def measure(self, run_one: Callable[[], Awaitable[Any]], burst: int, server: int) -> None:
        """Warm up, time single workflows, then a burst of ``burst`` started at once, with the
        CPU it cost this process (client and worker) and the server process ``server``."""
        for _ in range(3):  # caches, sticky queues, first-use imports
            await run_one()
        for _ in range(10):
            start = time.perf_counter()
            await run_one()
            self.single.append(time.perf_counter() - start)

        async def timed() -> None:
            start = time.perf_counter()
            await run_one()
            self.latencies.append(time.perf_counter() - start)

        worker_cpu, server_cpu = time.process_time(), _cpu_seconds(server)
        start = time.perf_counter()
        await asyncio.gather(*(timed() for _ in range(burst)))
        self.rates.append(burst / (time.perf_counter() - start))
        self.worker_cpu += time.process_time() - worker_cpu
        self.server_cpu += _cpu_seconds(server) - server_cpu
        self.runs += burst

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        return {
            "single_ms": round(statistics.median(self.single) * 1e3, 1),
            "per_s": round(statistics.median(self.rates), 1),
            "per_s_rounds": [round(rate, 1) for rate in self.rates],
            "p50_ms": round(latencies[len(latencies) // 2] * 1e3),
            "p90_ms": round(latencies[int(len(latencies) * 0.9)] * 1e3),
            "worker_cpu_ms": round(self.worker_cpu / self.runs * 1e3, 1),
            "server_cpu_ms": round(self.server_cpu / self.runs * 1e3, 1),
        }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


_Setup = Callable[[Client], tuple[Any, Callable[[], Awaitable[Any]]]]
"""Given a client: the worker to run (an async context manager) and how to run one workflow."""


def _raw_setup(raw_workflow: Any) -> _Setup:
    def setup(client: Client) -> tuple[Any, Callable[[], Awaitable[Any]]]:
        worker = Worker(
            client, task_queue="bench-raw", workflows=[RawOrder, RawOrderLocal], activities=[step]
        )
        return worker, _raw_run(client, raw_workflow)

    return setup


def _graph_setup(short: bool) -> _Setup:
    def setup(client: Client) -> tuple[Any, Callable[[], Awaitable[Any]]]:
        orch = Orchestrator()
        graph = order_graph(orch, short=short)
        # The orchestrator's registry: the graph starts by name, its input the state alone.
        engine = TemporalEngine(client, task_queue="bench-graph", registry=orch.registry)
        worker = graph_worker(client, task_queue="bench-graph", registry=orch.registry)
        return worker, functools.partial(engine.run, graph, {})

    return setup


async def _on_fresh_server(side: _Side, setup: _Setup, burst: int) -> None:
    """Measure one side on a server of its own: the embedded default (a SQLite file,
    durability ``FULL``), new and empty. A server slows down as its database fills, so a side
    that ran on the other's leftovers would be charged for them."""
    with tempfile.TemporaryDirectory() as data:
        async with DevServer(Path(data) / "temporal.db") as server:
            assert server.pid is not None
            worker, run_one = setup(await Client.connect(server.address))
            async with worker:
                await side.measure(run_one, burst, server.pid)


async def _w5(burst: int, rounds: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for flavour, raw_workflow, short in (
        ("activities", RawOrder.run, False),
        ("local activities", RawOrderLocal.run, True),
    ):
        raw, ours = _Side(), _Side()
        sides = [(raw, _raw_setup(raw_workflow)), (ours, _graph_setup(short))]
        for index in range(rounds):
            # Which side goes first alternates: the machine's own drift hits both alike.
            for side, setup in sides if index % 2 == 0 else reversed(sides):
                await _on_fresh_server(side, setup, burst)
        ratio = statistics.median(o / r for r, o in zip(raw.rates, ours.rates, strict=True))
        cpu_ratio = (raw.worker_cpu + raw.server_cpu) / (ours.worker_cpu + ours.server_cpu)
        common = {
            "workload": "W5",
            "name": "temporal_order",
            "steps": flavour,
            "burst": burst,
            "rounds": rounds,
            "unit": "workflows/s",
            "durability": "full",
        }
        records += [
            {**common, "impl": "raw temporalio", **raw.summary()},
            {**common, "impl": "GraphWorkflow", **ours.summary(), "ratio_to_raw": round(ratio, 2),
             "cpu_ratio_to_raw": round(cpu_ratio, 2), "target_ratio": TARGET,
             "meets_ratio": ratio >= TARGET},
        ]  # fmt: skip
    return records


def w5(quick: bool) -> list[dict[str, Any]]:
    """Run W5: per flavour, four rounds of a burst of 500 workflows a side (one round of 50
    with ``quick``)."""
    return asyncio.run(_w5(50, 1) if quick else _w5(500, 4))
