"""W11 ``instrumentation``: what metrics, tracing (and any listener) cost a run.

W2's five-node graph in this process, variants interleaved in rounds so drift hits every one
alike:

- ``off``: ``Orchestrator(metrics=False)``, no listener: the engine alone (what W2 measures);
- ``listener``: one hook that does nothing: the price of emitting events at all;
- ``metrics``: the default orchestrator, Prometheus metrics on;
- ``tracing``: metrics off, spans exported (batch processor, OTLP gRPC) to a real receiver in
  another process; against ``bare_sdk``: the OpenTelemetry SDK making the same six spans
  (a run and five nodes, the same attributes) through the same provider.

And W3 (100 nodes sleeping 10 ms, 10 at a time: real waiting) with everything off, and with
metrics and tracing on.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _receiver() -> Iterator[str]:
    """A real OTLP receiver (the tests') in a child process; its endpoint."""
    code = (
        "import time\nfrom tests.monitoring.otlp_receiver import OtlpReceiver\n"
        "receiver = OtlpReceiver()\nprint(receiver.endpoint, flush=True)\ntime.sleep(1e6)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()


def _bare_spans(provider: Any) -> Any:
    """One "run" as the bare SDK: a parent span and five child spans, attributes as ours."""
    from opentelemetry import trace

    tracer = provider.get_tracer("bare")
    nodes = [f"n{i}" for i in range(NODES)]

    def run(run_id: str) -> None:
        parent = tracer.start_span("run order5", attributes={"belugaflow.graph": "order5"})
        context = trace.set_span_in_context(parent)
        for attempt, node in enumerate(nodes, 1):
            span = tracer.start_span(
                f"node {node}",
                context,
                attributes={
                    "belugaflow.graph": "order5",
                    "belugaflow.node": node,
                    "belugaflow.run_id": run_id,
                    "belugaflow.attempt": attempt,
                    "belugaflow.engine": "local",
                },
            )
            span.set_attribute("belugaflow.outcome", "completed")
            span.end()
        parent.set_attribute("belugaflow.outcome", "completed")
        parent.end()

    return run


def _tracing(quick: bool, endpoint: str) -> dict[str, Any]:
    orch = Orchestrator(metrics=False, otel_endpoint=endpoint, otel_service_name="w11")
    assert orch.tracing is not None
    graph = w.build_order5(orch).compile()
    bare = _bare_spans(orch.tracing.provider)
    reps = 300 if quick else 2_000
    samples: dict[str, list[float]] = {"tracing": [], "bare_sdk": []}
    for _ in range(ROUNDS):
        # Each variant starts with an empty queue: its spans are exported while it runs, not
        # while the other one does.
        samples["tracing"] += sample(graph.invoke, {"order_id": "1"}, warmup=200, reps=reps)
        orch.tracing.flush(30)
        samples["bare_sdk"] += sample(bare, os.urandom(16).hex(), warmup=200, reps=reps)
        orch.tracing.flush(30)
    tracing, bare_sdk = (quantiles(samples[name], US)[0] for name in ("tracing", "bare_sdk"))
    return {"w2_tracing_us": tracing, "bare_sdk_us": bare_sdk, "tracing_ratio": tracing / bare_sdk}


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


async def _w3(quick: bool, endpoint: str) -> dict[str, Any]:
    everything = Orchestrator(otel_endpoint=endpoint, otel_service_name="w11")
    graphs = {
        "off": w.build_fanout100(Orchestrator(metrics=False), 10).compile(),
        "metrics": w.build_fanout100(everything, 10).compile(),
    }
    samples: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(ROUNDS):
        for name, graph in graphs.items():
            samples[name] += await asample(graph.ainvoke, {}, warmup=1, reps=2 if quick else 8)
    off, on = (quantiles(samples[name], S)[0] for name in ("off", "metrics"))
    return {"w3_off_s": off, "w3_all_on_s": on, "w3_ratio": on / off}


def w11(quick: bool) -> list[dict[str, Any]]:
    found = _w2(quick)
    with _receiver() as endpoint:
        found.update(_tracing(quick, endpoint))
        found.update(asyncio.run(_w3(quick, endpoint)))
    targets = {
        "target_metrics_us_per_node": 2.0,
        "target_metrics_ratio": 1.5,
        "target_tracing_ratio": 1.3,
        "target_w3_ratio": 1.05,
    }
    meets = (
        found["metrics_us_per_node"] <= 2.0
        and found["metrics_ratio"] <= 1.5
        and found["tracing_ratio"] <= 1.3
        and found["w3_ratio"] <= 1.05
    )
    record: dict[str, Any] = {"workload": "W11", "name": "instrumentation", "unit": "us"}
    record.update({key: _round(value) for key, value in found.items()})
    record.update(targets)
    record["meets_target"] = meets
    return [record]


def _round(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value
