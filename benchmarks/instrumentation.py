"""W11 ``instrumentation``: what metrics (and any listener) cost a run, in one process.

W2's five-node graph, interleaved in rounds so drift hits every variant alike:

- ``off``: ``Orchestrator(metrics=False)``, no listener: the engine alone (what W2 measures);
- ``listener``: one hook that does nothing: the price of emitting events at all;
- ``metrics``: the default orchestrator, Prometheus metrics on.

And W3 (100 nodes sleeping 10 ms, 10 at a time: real waiting) with metrics off and on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from belugaflow import Orchestrator

from . import workloads as w
from ._harness import asample, quantiles, sample

US, S = 1e3, 1e9
NODES = 5
ROUNDS = 5


def _variants() -> dict[str, Orchestrator]:
    return {
        "off": Orchestrator(metrics=False),
        "listener": Orchestrator(metrics=False, hooks=[lambda event: None]),
        "metrics": Orchestrator(),
    }


def _w2(quick: bool) -> dict[str, Any]:
    graphs = {name: w.build_order5(orch).compile() for name, orch in _variants().items()}
    samples: dict[str, list[float]] = {name: [] for name in graphs}
    reps = 1_000 if quick else 10_000
    for _ in range(ROUNDS):
        for name, graph in graphs.items():
            samples[name] += sample(graph.invoke, {"order_id": "1"}, warmup=1_000, reps=reps)
    medians = {name: quantiles(found, US)[0] for name, found in samples.items()}
    off, metrics = medians["off"], medians["metrics"]
    return {
        "w2_off_us": off,
        "w2_listener_us": medians["listener"],
        "w2_metrics_us": metrics,
        "metrics_us_per_node": (metrics - off) / NODES,
        "metrics_ratio": metrics / off,
        "listener_ratio": medians["listener"] / off,
        "reps": reps * ROUNDS,
    }


async def _w3(quick: bool) -> dict[str, Any]:
    graphs = {
        "off": w.build_fanout100(Orchestrator(metrics=False), 10).compile(),
        "metrics": w.build_fanout100(Orchestrator(), 10).compile(),
    }
    samples: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(ROUNDS):
        for name, graph in graphs.items():
            samples[name] += await asample(graph.ainvoke, {}, warmup=1, reps=2 if quick else 8)
    off, on = (quantiles(samples[name], S)[0] for name in ("off", "metrics"))
    return {"w3_off_s": off, "w3_metrics_s": on, "w3_ratio": on / off}


def w11(quick: bool) -> list[dict[str, Any]]:
    found = _w2(quick)
    found.update(asyncio.run(_w3(quick)))
    targets = {
        "target_metrics_us_per_node": 2.0,
        "target_metrics_ratio": 1.5,
        "target_w3_ratio": 1.05,
    }
    meets = (
        found["metrics_us_per_node"] <= 2.0
        and found["metrics_ratio"] <= 1.5
        and found["w3_ratio"] <= 1.05
    )
    record: dict[str, Any] = {"workload": "W11", "name": "instrumentation", "unit": "us"}
    record.update({key: _round(value) for key, value in found.items()})
    record.update(targets)
    record["meets_target"] = meets
    return [record]


def _round(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value
