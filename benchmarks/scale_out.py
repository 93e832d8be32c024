"""W14 ``scale_out``: W5's burst with 1, 2 and 4 worker processes against one server.

W5's 4-step graph (four activities, ``GraphWorkflow``) is served by ``belugaflow worker --app
benchmarks.scale_out:orch --processes N``: real worker processes, separate from this one,
polling one task queue (for N = 1 the plain command, no supervisor). Each worker count gets a
fresh embedded dev server (a SQLite file) and its own fleet; after a warm-up of 20 workflows
at once, a burst of workflows is started at once from this process. The whole set runs twice:
on W5's server (durability ``FULL``: an fsync per commit), and on one that never fsyncs
(``FAST``), to tell a disk-bound server from a CPU-bound one.

Reported per worker count: completed workflows/s, p50/p99 latency, and CPU seconds per
workflow of the server, of the workers (summed over the worker processes), of the fleet's
supervisor and of this process (the client), from ``/proc/<pid>/stat`` before and after the
burst; plus how many of the machine's cores each of them kept busy during the burst, which
shows where it saturates.

The worker counts run in rounds, the order reversed every other round, so the machine's drift
hits each count alike; the rate is the median over the rounds.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from temporalio.client import Client

from belugaflow import Orchestrator
from belugaflow.temporal import DevServer, Durability, TemporalEngine

from .durable import _cpu_seconds, order_graph

__all__ = ["orch", "w14"]

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "bench-scale-out"
APP = "benchmarks.scale_out:orch"
WARMUP = 20
"""Workflows before the burst: enough that every worker of 4 took some (imports, caches)."""

orch = Orchestrator(workflow_task_queue=QUEUE)
"""What the worker processes serve: W5's graph with activities; metrics on, as deployed."""
GRAPH = order_graph(orch, short=False)


class _Fleet:
    """``belugaflow worker --processes N`` for the benchmark's app, output in a log file."""

    def __init__(self, address: str, processes: int, log: Path) -> None:
        self.processes, self.log = processes, log
        command = [sys.executable, "-m", "belugaflow.cli", "worker", "--app", APP]
        command += ["--address", address, "--task-queue", QUEUE, "--metrics-port", "0"]
        command += ["--processes", str(processes)]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    async def ready(self) -> None:
        """Once every worker serves its /metrics: it started polling (or is about to)."""
        while len(re.findall(r"metrics at http://", self.log.read_text())) < self.processes:
            if self.process.poll() is not None:
                raise RuntimeError(f"the workers exited:\n{self.log.read_text()}")
            await asyncio.sleep(0.1)

    def worker_pids(self) -> list[int]:
        """The processes that do the work: the children, or the one worker itself."""
        if self.processes == 1:
            return [self.process.pid]
        return [
            int(pid) for pid in re.findall(r"fleet: worker \d+: pid (\d+)", self.log.read_text())
        ]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Cpu:
    """CPU seconds of some processes between two moments."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.start = self._now()
        self.wall = time.perf_counter()

    def _now(self) -> dict[str, float]:
        now = {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in self.pids.items()}
        now["client"] = time.process_time()
        return now

    def spent(self) -> tuple[dict[str, float], float]:
        """CPU seconds per group since the start, and the wall seconds."""
        end, wall = self._now(), time.perf_counter() - self.wall
        return {name: end[name] - self.start[name] for name in end}, wall


async def _burst(processes: int, burst: int, logs: Path, durability: Durability) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        async with DevServer(Path(data) / "temporal.db", durability=durability) as server:
            assert server.pid is not None
            fleet = _Fleet(server.address, processes, logs / f"workers-{processes}.log")
            try:
                await fleet.ready()
                client = await Client.connect(server.address)
                engine = TemporalEngine(client, task_queue=QUEUE, registry=orch.registry)
                await asyncio.gather(*(engine.run(GRAPH, {}) for _ in range(WARMUP)))
                latencies: list[float] = []

                async def timed() -> None:
                    start = time.perf_counter()
                    await engine.run(GRAPH, {})
                    latencies.append(time.perf_counter() - start)

                supervisor = [fleet.process.pid] if processes > 1 else []
                groups = {"server": [server.pid], "workers": fleet.worker_pids(),
                          "supervisor": supervisor}  # fmt: skip
                cpu = _Cpu(groups)
                await asyncio.gather(*(timed() for _ in range(burst)))
                spent, wall = cpu.spent()
            finally:
                fleet.stop()
    latencies.sort()
    return {
        "per_s": burst / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "cpu_ms": {name: seconds / burst * 1e3 for name, seconds in spent.items()},
        "cores": {name: seconds / wall for name, seconds in spent.items()},
    }


def _rounds(counts: tuple[int, ...], rounds: int) -> Iterator[int]:
    for index in range(rounds):
        yield from counts if index % 2 == 0 else reversed(counts)


async def _w14(
    counts: tuple[int, ...], burst: int, rounds: int, durability: Durability
) -> list[dict[str, Any]]:
    results: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    with tempfile.TemporaryDirectory() as logs:
        for count in _rounds(counts, rounds):
            results[count].append(await _burst(count, burst, Path(logs), durability))
    records = []
    one = statistics.median(result["per_s"] for result in results[counts[0]])
    for count in counts:
        runs = results[count]
        rate = statistics.median(run["per_s"] for run in runs)

        def mean(key: str, name: str, runs: list[dict[str, Any]] = runs) -> float:
            return round(statistics.fmean(run[key][name] for run in runs), 2)

        records.append(
            {
                "workload": "W14",
                "name": "scale_out",
                "worker_processes": count,
                "burst": burst,
                "rounds": rounds,
                "unit": "workflows/s",
                "median": round(rate, 1),
                "per_s_rounds": [round(run["per_s"], 1) for run in runs],
                "speedup_vs_1": round(rate / one, 2),
                "p50_ms": round(statistics.median(run["p50_ms"] for run in runs)),
                "p99_ms": round(statistics.median(run["p99_ms"] for run in runs)),
                "server_cpu_ms": mean("cpu_ms", "server"),
                "worker_cpu_ms": mean("cpu_ms", "workers"),
                "supervisor_cpu_ms": mean("cpu_ms", "supervisor"),
                "client_cpu_ms": mean("cpu_ms", "client"),
                "server_cores": mean("cores", "server"),
                "worker_cores": mean("cores", "workers"),
                "client_cores": mean("cores", "client"),
                "busy_cores": round(sum(mean("cores", name) for name in runs[0]["cores"]), 2),
                "machine_cores": os.cpu_count(),
                "durability": durability.value,
            }
        )
    return records


def w14(quick: bool) -> list[dict[str, Any]]:
    """Run W14: 1, 2 and 4 worker processes, bursts of 500, three rounds, first on W5's server
    (durability ``FULL``: an fsync per commit), then on one that never fsyncs (``FAST``), to
    see what limits the rate once the disk does not (``quick``: 1 and 2 processes, a burst of
    30, one round, ``FULL`` only)."""
    if quick:
        return asyncio.run(_w14((1, 2), 30, 1, Durability.FULL))
    return [
        record
        for durability in (Durability.FULL, Durability.FAST)
        for record in asyncio.run(_w14((1, 2, 4), 500, 3, durability))
    ]
