"""Run the benchmarks; print one JSON line per workload.

Usage (from the repository root)::

    python -m benchmarks.run              # all workloads, each in a fresh interpreter
    python -m benchmarks.run --only W4    # one workload, in this process
    python -m benchmarks.run --quick      # few repetitions: a smoke test, not a measurement
    python -m benchmarks.run --only chaos # the chaos soak: only on request (several minutes)

Each line holds ``workload``, ``name``, ``median``, ``p90`` and ``unit``, the target from the
issue, and the same workload written as bare Python (``bare_*``) so the ratio is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from belugaflow import Orchestrator

from . import api, chaos, durable, durable_scale, embedders, memory, scale_out
from . import workloads as w
from ._harness import asample, peak_rss_mib, quantiles, sample, sample_batched
from .instrumentation import w11
from .llm import w9
from .local_llm import w10

Record = dict[str, Any]


def _engine() -> Orchestrator:
    """W1-W4 measure the engine alone, as before metrics existed; W11 prices instrumentation."""
    return Orchestrator(metrics=False)


US, MS, S = 1e3, 1e6, 1e9


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _record(
    workload: str, name: str, samples: list[float], scale: float, unit: str, **extra: Any
) -> Record:
    median, p90 = quantiles(samples, scale)
    record: Record = {
        "workload": workload,
        "name": name,
        "median": _round(median),
        "p90": _round(p90),
        "unit": unit,
        "reps": len(samples),
    }
    for key, value in extra.items():
        record[key] = _round(value) if isinstance(value, float) else value
    return record


def _bare(fn: Callable[[Any], Any], arg: Any, quick: bool, scale: float) -> float:
    reps = 20 if quick else 200
    median, _ = quantiles(sample_batched(fn, arg, warmup=100, reps=reps, batch=100), scale)
    return median


def w1(quick: bool) -> list[Record]:
    chain = w.build_chain10(_engine())
    assert chain.invoke({"counter": 0}) == {"counter": 10}
    samples = sample(chain.invoke, {"counter": 0}, warmup=2_000, reps=2_000 if quick else 50_000)
    bare = _bare(w.bare_chain10, {"counter": 0}, quick, US)
    median = quantiles(samples, US)[0]
    return [
        _record(
            "W1", "chain10", samples, US, "us",
            target=30, meets_target=median <= 30,
            bare_median=bare, ratio_to_bare=median / bare,
        )
    ]  # fmt: skip


def w2(quick: bool) -> list[Record]:
    graph = w.build_order5(_engine())
    assert graph.invoke({"order_id": "1"})["status"] == "completed"
    samples = sample(graph.invoke, {"order_id": "1"}, warmup=2_000, reps=2_000 if quick else 50_000)
    bare = _bare(w.bare_order5, {"order_id": "1"}, quick, US)
    median = quantiles(samples, US)[0]
    return [
        _record(
            "W2", "order5", samples, US, "us",
            target=25, meets_target=median <= 25,
            bare_median=bare, ratio_to_bare=median / bare,
        )
    ]  # fmt: skip


async def _w3(quick: bool) -> list[Record]:
    records = []
    orch = _engine()
    for workers, target, reps in ((10, 1.10, 20), (100, 1.5, 60)):
        reps = 3 if quick else reps
        graph = w.build_fanout100(orch, workers)
        result = await graph.ainvoke({})
        assert (result["count"], result["total"]) == (w.W3_NODES, sum(range(w.W3_NODES)))
        ideal = w.W3_NODES / workers * w.W3_SLEEP
        samples = await asample(graph.ainvoke, {}, warmup=3, reps=reps)
        bare = quantiles(await asample(w.bare_fanout100, workers, warmup=3, reps=reps), S)[0]
        median, p90 = quantiles(samples, S)
        records.append(
            _record(
                "W3", "fanout100_io", samples, S, "s",
                max_workers=workers, ideal=ideal,
                ratio=median / ideal, p90_ratio=p90 / ideal,
                target_ratio=target, meets_target=median / ideal <= target,
                bare_median=bare, bare_ratio=bare / ideal,
            )
        )  # fmt: skip
    return records


def w3(quick: bool) -> list[Record]:
    return asyncio.run(_w3(quick))


def w4(quick: bool) -> list[Record]:
    rss_before = peak_rss_mib()
    builds, compiles = [], []
    for attempt in range(1 if quick else 3):
        start = time.perf_counter_ns()
        graph = w.build_layered(_engine(), name=f"layered1000_{attempt}")
        built = time.perf_counter_ns()
        compiled = graph.compile()
        builds.append(built - start)
        compiles.append(time.perf_counter_ns() - built)
    nodes, edges = len(compiled.spec.nodes), len(compiled.spec.edges)
    assert len(compiled.invoke({})) == nodes
    samples = sample(compiled.invoke, {}, warmup=5, reps=10 if quick else 200)
    bare = quantiles(sample_batched(w.bare_layered, {}, warmup=5, reps=50, batch=10), MS)[0]
    median = quantiles(samples, MS)[0]
    return [
        _record(
            "W4", "layered1000", samples, MS, "ms",
            per_node_us=median * 1e3 / nodes, nodes=nodes, edges=edges,
            build_ms=quantiles(builds, MS)[0], compile_ms=quantiles(compiles, MS)[0],
            peak_rss_mib=peak_rss_mib(), rss_before_build_mib=rss_before,
            target=15, meets_target=median <= 15,
            bare_median=bare, ratio_to_bare=median / bare,
        )
    ]  # fmt: skip


def w13(quick: bool) -> list[Record]:
    """Memory recall: the stores at 10,000 entries, then the local embedder."""
    return memory.w13_stores(quick) + embedders.w13_embedders(quick)


WORKLOADS: dict[str, Callable[[bool], list[Record]]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": durable.w5,
    "W7": durable_scale.w7,
    "W8": durable_scale.w8,
    "W9": w9,
    "W10": w10,
    "W11": w11,
    "W12": api.w12,
    "W13": w13,
    "W14": scale_out.w14,
    "chaos": chaos.chaos,
}
ON_REQUEST = frozenset({"chaos"})
"""Run only with ``--only``: the chaos soak kills processes for minutes and measures survival,
not speed."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", choices=sorted(WORKLOADS), help="run one workload in-process")
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    args = parser.parse_args(argv)
    if args.only:
        for record in WORKLOADS[args.only](args.quick):
            print(json.dumps(record), flush=True)
        return 0
    # One fresh interpreter per workload: no shared caches or GC state, and W4's peak RSS is
    # its own.
    for name in WORKLOADS:
        if name in ON_REQUEST:
            continue
        command = [sys.executable, "-m", "benchmarks.run", "--only", name]
        if args.quick:
            command.append("--quick")
        done = subprocess.run(command, check=False)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
