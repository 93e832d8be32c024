"""Durable engine at scale, on the embedded dev server (``DevServer`` defaults, SQLite file).

* W7 ``fanout_durable``: start → 50 parallel activities → join, as a graph on ``GraphWorkflow``
  and as a raw temporalio workflow (``asyncio.gather``), interleaved in one run; one worker in
  this process.
* W8 ``concurrent10k``: 10,000 workflows that each wait for a signal are started, then signalled,
  then awaited; the worker is a separate process (``benchmarks.w8_worker``) so its peak RSS is
  its own. Reports start and completion rates, the worker's peak RSS, and any lost workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from belugaflow import Orchestrator
from belugaflow.graph import CompiledGraph
from belugaflow.temporal import DevServer, TemporalEngine, graph_worker

from . import workloads as w
from ._harness import quantiles
from .w8_worker import SIGNAL, WORKFLOW

__all__ = ["w7", "w8"]

Record = dict[str, Any]

ROOT = Path(__file__).resolve().parents[1]

# -- W7: start -> 50 parallel activities -> join --------------------------------------------------

W7_BRANCHES = 50
W7_TOTAL = sum(range(W7_BRANCHES))
_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bench.fan.step")
async def fan_step(value: int) -> int:
    """A trivial activity."""
    return value


@activity.defn(name="bench.fan.join")
async def fan_join(values: list[int]) -> int:
    """The join: a trivial activity over every branch's result."""
    return sum(values)


# Unsandboxed, like W5's raw baseline: the fastest plain-SDK runner is the bar.
@workflow.defn(name="bench.RawFanout", sandboxed=False)
class RawFanout:
    """The raw SDK baseline: one activity, 50 at once with ``asyncio.gather``, one more."""

    @workflow.run
    async def run(self, branches: int) -> int:
        await workflow.execute_activity(fan_step, -1, start_to_close_timeout=_TIMEOUT)
        values = await asyncio.gather(
            *(
                workflow.execute_activity(fan_step, i, start_to_close_timeout=_TIMEOUT)
                for i in range(branches)
            )
        )
        return await workflow.execute_activity(
            fan_join, list(values), start_to_close_timeout=_TIMEOUT
        )


def _branch(i: int) -> Callable[[Any], dict[str, int]]:
    def branch(state: Any) -> dict[str, int]:
        return {"values": i}

    return branch


def build_fanout(orch: Orchestrator) -> CompiledGraph:
    """W7 as a graph: ``start`` → ``branch0..49`` (``append`` reducer) → ``join``."""
    branches = [_branch(i) for i in range(W7_BRANCHES)]
    return w.build_fanout(orch, "fanout_durable", branches, max_workers=W7_BRANCHES).compile()


async def _timed(run_one: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter_ns()
    await run_one()
    return time.perf_counter_ns() - start


async def _w7(reps: int) -> list[Record]:
    with tempfile.TemporaryDirectory(prefix="belugaflow-w7-") as data:
        async with DevServer(Path(data) / "w7.db") as server:
            client = await Client.connect(server.address)
            orch = Orchestrator()
            graph = build_fanout(orch)
            engine = TemporalEngine(client, task_queue="w7-graph")

            async def run_graph() -> None:
                result = await engine.run(graph, {})
                assert (result["count"], result["total"]) == (W7_BRANCHES, W7_TOTAL), result

            async def run_raw() -> None:
                total = await client.execute_workflow(
                    RawFanout.run, W7_BRANCHES, id=uuid.uuid4().hex, task_queue="w7-raw"
                )
                assert total == W7_TOTAL, total

            raw_worker = Worker(
                client, task_queue="w7-raw", workflows=[RawFanout], activities=[fan_step, fan_join]
            )
            ours_worker = graph_worker(client, task_queue="w7-graph", registry=orch.registry)
            async with raw_worker, ours_worker:
                for _ in range(2):  # warm-up
                    await run_raw()
                    await run_graph()
                raw: list[float] = []
                ours: list[float] = []
                for rep in range(reps):  # interleaved, alternating order: drift hits both alike
                    pair = [(raw, run_raw), (ours, run_graph)]
                    for samples, run_one in pair if rep % 2 else reversed(pair):
                        samples.append(await _timed(run_one))
            durability = server.durability.value
    median, p90 = quantiles(ours, 1e6)
    raw_median, raw_p90 = quantiles(raw, 1e6)
    return [
        {
            "workload": "W7", "name": "fanout_durable", "impl": "GraphWorkflow",
            "median": round(median, 1), "p90": round(p90, 1), "unit": "ms", "reps": reps,
            "branches": W7_BRANCHES, "max_workers": W7_BRANCHES,
            "raw_median": round(raw_median, 1), "raw_p90": round(raw_p90, 1),
            "ratio_to_raw": round(median / raw_median, 2), "durability": durability,
        }
    ]  # fmt: skip


def w7(quick: bool) -> list[Record]:
    """Run W7: 15 timed runs of each (3 with ``quick``), after 2 warm-up runs."""
    return asyncio.run(_w7(3 if quick else 15))


# -- W8: 10,000 workflows waiting for a signal ----------------------------------------------------

W8_IN_FLIGHT = 200  # start / signal / result calls in flight at once
# start + signal + result may take this long; whatever has not completed by then is reported
# with its server-side status.
W8_DEADLINE = 1800.0
# The SDK's defaults, passed explicitly so that the record shows them. Caching all 10,000
# (max_cached_workflows=10000: ~60 KiB of RSS each) or a 120 s sticky timeout did not raise
# throughput here: the server is the bottleneck.
W8_WORKER = {"max_cached_workflows": 1000, "max_concurrent_workflow_tasks": 100,
             "sticky_queue_schedule_to_start_timeout_s": 10.0}  # fmt: skip
W8_LIST_MISSING = 20


def _proc_status_kib(pid: int, field: str) -> int:
    """A ``Vm*`` field of ``/proc/<pid>/status``, in KiB (``VmHWM`` is the peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


async def _start_worker(address: str, task_queue: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.w8_worker", address, task_queue,
        "--max-cached", str(W8_WORKER["max_cached_workflows"]),
        "--max-tasks", str(W8_WORKER["max_concurrent_workflow_tasks"]),
        "--sticky-timeout", str(W8_WORKER["sticky_queue_schedule_to_start_timeout_s"]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip


async def _stop_worker(process: asyncio.subprocess.Process) -> None:
    """Close its stdin (it drains and exits); kill it if it has not exited after 40 s."""
    if process.returncode is None:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 40)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _bounded(
    ids: list[str], call: Callable[[str], Awaitable[Any]], deadline: float
) -> tuple[list[str], list[float], dict[str, str]]:
    """``call(id)`` for every id, ``W8_IN_FLIGHT`` at once, until the loop time ``deadline``.

    Returns the ids whose call succeeded, each one's seconds, and the errors by id; calls cut
    off by the deadline are in none of them.
    """
    limit = asyncio.Semaphore(W8_IN_FLIGHT)
    done: list[str] = []
    seconds: list[float] = []
    errors: dict[str, str] = {}

    async def one(wid: str) -> None:
        async with limit:
            start = time.perf_counter()
            try:
                await call(wid)
            except Exception as error:
                errors[wid] = f"{type(error).__name__}: {error}"
            else:
                seconds.append(time.perf_counter() - start)
                done.append(wid)

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            await asyncio.gather(*(one(wid) for wid in ids))
    return done, seconds, errors


async def _backlog(client: Client, task_queue: str) -> int:
    """Workflow tasks waiting on ``task_queue`` for a poller (approximate, from matching)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
    )
    return int(response.stats.approximate_backlog_count)


async def _settle(client: Client, task_queue: str, deadline: float) -> None:
    """Wait until the worker has taken every first workflow task (two empty readings), so
    that each workflow is waiting when its signal arrives."""
    empty = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            while empty < 2:
                empty = empty + 1 if await _backlog(client, task_queue) == 0 else 0
                await asyncio.sleep(0.2)


async def _statuses(client: Client, ids: list[str]) -> dict[str, int]:
    """How many of ``ids`` the server has in each status (``NOT_FOUND`` if it has none)."""

    async def status(wid: str) -> str:
        try:
            described = await client.get_workflow_handle(wid).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return "NOT_FOUND"
            raise
        return described.status.name if described.status else "UNKNOWN"

    limit = asyncio.Semaphore(W8_IN_FLIGHT)

    async def bounded(wid: str) -> str:
        async with limit:
            return await status(wid)

    return dict(Counter(await asyncio.gather(*(bounded(wid) for wid in ids))))


async def _server_count(client: Client, query: str, expected: int) -> int:
    """Visibility's count for ``query``, re-read for up to 10 s until it reaches ``expected``
    (visibility is updated asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        count = (await client.count_workflows(query)).count
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.5)


async def _w8(n: int) -> list[Record]:
    began = time.perf_counter()
    task_queue = f"w8-{uuid.uuid4().hex[:8]}"
    ids = [f"w8-{i:05d}" for i in range(n)]
    handles: dict[str, WorkflowHandle[Any, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="belugaflow-w8-") as data:
        async with DevServer(Path(data) / "w8.db") as server:
            assert server.pid is not None
            client = await Client.connect(server.address)
            worker = await _start_worker(server.address, task_queue)
            try:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 60)
                if line.strip() != b"ready":
                    raise RuntimeError("the W8 worker did not start; its stderr says why")
                idle_kib = _proc_status_kib(worker.pid, "VmRSS")

                async def start(wid: str) -> None:
                    handles[wid] = await client.start_workflow(
                        WORKFLOW, id=wid, task_queue=task_queue
                    )

                async def signal(wid: str) -> None:
                    await handles[wid].signal(SIGNAL, wid)

                async def result(wid: str) -> None:
                    value = await handles[wid].result()
                    if value != wid:
                        raise AssertionError(f"{wid} returned {value!r}")

                marks: list[tuple[float, float, float, float]] = []

                def mark() -> None:  # wall clock; CPU of the server, the worker, this process
                    cpu = _cpu_s(server.pid or 0), _cpu_s(worker.pid), time.process_time()
                    marks.append((time.perf_counter(), *cpu))

                deadline = asyncio.get_running_loop().time() + W8_DEADLINE
                mark()
                started, start_calls, start_errors = await _bounded(ids, start, deadline)
                mark()
                await _settle(client, task_queue, deadline)
                mark()
                signalled, _, signal_errors = await _bounded(started, signal, deadline)
                mark()
                completed, _, result_errors = await _bounded(signalled, result, deadline)
                mark()
                worker_peak_kib = _proc_status_kib(worker.pid, "VmHWM")
                server_peak_kib = _proc_status_kib(server.pid, "VmHWM")
                done = set(completed)
                missing = [wid for wid in started if wid not in done]
                missing_status = await _statuses(client, missing)
                server_completed = await _server_count(
                    client, f"TaskQueue='{task_queue}' AND ExecutionStatus='Completed'", n
                )
                durability = server.durability.value
            finally:
                await _stop_worker(worker)
    (t0, *_), (t1, *_), (t2, *_), (t3, *_), (t4, *_) = marks
    start_p50, start_p90 = quantiles([s * 1e9 for s in start_calls], 1e6)
    errors = {**start_errors, **signal_errors, **result_errors}
    return [
        {
            "workload": "W8", "name": "concurrent10k", "workflows": n,
            "started": len(started), "signalled": len(signalled), "completed": len(completed),
            "lost": len(missing), "missing": missing[:W8_LIST_MISSING],
            "missing_status": missing_status, "server_completed": server_completed,
            "errors": len(errors), "first_errors": sorted(set(errors.values()))[:3],
            "unit": "workflows/s",
            "start_per_s": round(len(started) / (t1 - t0), 1),
            "start_call_p50_ms": round(start_p50), "start_call_p90_ms": round(start_p90),
            "settle_s": round(t2 - t1, 1),
            "signal_per_s": round(len(signalled) / (t3 - t2), 1),
            "complete_per_s": round(len(completed) / (t4 - t2), 1),
            "worker_peak_rss_mib": _mib(worker_peak_kib), "worker_idle_rss_mib": _mib(idle_kib),
            "server_peak_rss_mib": _mib(server_peak_kib),
            "wall_s": round(t4 - t0, 1), "total_s": round(time.perf_counter() - began, 1),
            "cpu_s": {
                "phases": ["start", "settle", "signal", "result"],
                **{
                    who: [round(b[k] - a[k], 1) for a, b in itertools.pairwise(marks)]
                    for k, who in ((1, "server"), (2, "worker"), (3, "benchmark"))
                },
            },
            "in_flight": W8_IN_FLIGHT, **W8_WORKER, "durability": durability,
            "target_lost": 0, "meets_target": not missing and len(started) == n,
        }
    ]  # fmt: skip


def w8(quick: bool) -> list[Record]:
    """Run W8: 10,000 workflows (1,000 with ``quick``)."""
    return asyncio.run(_w8(1_000 if quick else 10_000))
