"""Prometheus metrics of an orchestrator's runs, read from the one event seam.

:class:`Metrics` is an event hook (runs and nodes, both engines) and an LLM hook (model calls);
breaker states are read when Prometheus scrapes, so a breaker costs nothing between scrapes.
Names follow the use case: with the default prefix ``workflow`` they are
``workflows_started_total``, ``workflow_duration_seconds``, ``workflow_activities_total``,
``workflow_failures_total`` and ``workflow_retries_total``. Labels carry names, never ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._events import Event, EventKind
from ..resilience import BreakerRegistry, CircuitState

if TYPE_CHECKING:
    from ..llms import LLMCall

__all__ = ["Metrics", "failure_code"]

# Runs last from milliseconds (in process) to days (a wait for a person).
RUN_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 60, 300, 1800, 3600, 21600, 86400, 604800)
NODE_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120, 600)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

_RUN_ENDS = {
    EventKind.RUN_COMPLETED: "completed",
    EventKind.RUN_FAILED: "failed",
    EventKind.RUN_CANCELLED: "cancelled",
}


def failure_code(error: BaseException | None) -> str:
    """The failure type of a metric label: the error's stable ``code``, else ``"error"``."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else "error"


class Metrics:
    """Every metric of one orchestrator, in its own registry (so two orchestrators in one
    process never clash).

    Attach :meth:`on_event` as an event hook and :meth:`on_llm_call` as an LLM hook; expose
    :attr:`registry` (``prometheus_client.generate_latest(metrics.registry)``).
    """

    def __init__(self, prefix: str = "workflow", breakers: Iterable[BreakerRegistry] = ()) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        run = ("workflow", "engine")
        node = ("workflow", "activity", "engine")
        self.started = Counter(f"{prefix}s_started", "Runs started.", run, registry=r)
        self.duration = Histogram(
            f"{prefix}_duration_seconds",
            "Seconds from a run's start to its end, by outcome.",
            (*run, "outcome"),
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            f"{prefix}_failures", "Runs that failed, by the error's code.", (*run, "code"),
            registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            f"{prefix}_runs_in_flight", "Runs started in this process and not ended.", run,
            registry=r,
        )  # fmt: skip
        self.activities = Counter(
            f"{prefix}_activities",
            "Node (activity) attempts that ended, by outcome: completed, retried or failed.",
            (*node, "outcome"),
            registry=r,
        )
        self.retries = Counter(
            f"{prefix}_retries", "Node attempts that failed and were retried.", node, registry=r
        )
        self.node_duration = Histogram(
            f"{prefix}_node_duration_seconds",
            "Seconds one node attempt took, by outcome.",
            (*node, "outcome"),
            buckets=NODE_BUCKETS,
            registry=r,
        )
        self.waiting = Gauge(
            f"{prefix}_waits_in_progress", "Wait nodes waiting for their signal.", run, registry=r
        )
        self.parked = Counter(
            f"{prefix}_nodes_parked", "Nodes that failed for good and parked their run.", node,
            registry=r,
        )  # fmt: skip
        llm = ("provider", "model")
        self.llm_calls = Counter(
            f"{prefix}_llm_calls", "Model calls, by outcome.", (*llm, "outcome"), registry=r
        )
        self.llm_tokens = Counter(
            f"{prefix}_llm_tokens", "Tokens of model calls, by type: input or output.",
            (*llm, "type"), registry=r,
        )  # fmt: skip
        self.llm_duration = Histogram(
            f"{prefix}_llm_call_duration_seconds",
            "Seconds a model call took, all attempts.",
            llm,
            buckets=LLM_BUCKETS,
            registry=r,
        )
        r.register(_BreakerStates(f"{prefix}_circuit_breaker_state", tuple(breakers)))
        # Runs and waits this process counted, so a gauge only goes down for what went up here
        # (a durable run may end on another worker than the one that started it).
        self._open: dict[str, tuple[str, str]] = {}
        self._waits: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        """The event hook: records one run or node event."""
        kind = event.kind
        workflow, engine = event.graph, event.engine
        if kind is EventKind.NODE_COMPLETED:
            if event.attempt == 0:  # a wait ended (its value arrived, or its timeout passed)
                self._end_wait(event)
                return
            self._attempt(event, "completed")
        elif kind is EventKind.NODE_RETRY_SCHEDULED:
            self._attempt(event, "retried")
            self.retries.labels(workflow, event.node, engine).inc()
        elif kind is EventKind.NODE_FAILED:
            self._attempt(event, "failed")
        elif kind is EventKind.RUN_STARTED:
            self.started.labels(workflow, engine).inc()
            self.in_flight.labels(workflow, engine).inc()
            with self._lock:
                self._open[event.run_id] = (workflow, engine)
        elif kind in _RUN_ENDS:
            self._end_run(event, _RUN_ENDS[kind])
        elif kind is EventKind.NODE_WAITING:
            self.waiting.labels(workflow, engine).inc()
            with self._lock:
                self._waits.setdefault(event.run_id, set()).add(f"{event.node}")
        elif kind is EventKind.NODE_PARKED:
            self.parked.labels(workflow, event.node, engine).inc()

    def _attempt(self, event: Event, outcome: str) -> None:
        labels = (event.graph, event.node, event.engine, outcome)
        self.activities.labels(*labels).inc()
        if event.duration is not None:
            self.node_duration.labels(*labels).observe(event.duration)

    def _end_run(self, event: Event, outcome: str) -> None:
        workflow, engine = event.graph, event.engine
        if event.duration is not None:
            self.duration.labels(workflow, engine, outcome).observe(event.duration)
        if outcome == "failed":
            self.failures.labels(workflow, engine, failure_code(event.error)).inc()
        with self._lock:
            counted = self._open.pop(event.run_id, None)
            waits = self._waits.pop(event.run_id, ())
        if counted is not None:
            self.in_flight.labels(*counted).dec()
        if waits:
            self.waiting.labels(workflow, engine).dec(len(waits))

    def _end_wait(self, event: Event) -> None:
        with self._lock:
            waits = self._waits.get(event.run_id)
            if waits is None or event.node not in waits:
                return  # it began to wait in another process
            waits.discard(f"{event.node}")
        self.waiting.labels(event.graph, event.engine).dec()

    def on_llm_call(self, call: LLMCall) -> None:
        """The LLM hook: records one model call (all its attempts)."""
        provider, model = call.provider, call.model
        self.llm_calls.labels(provider, model, call.outcome).inc()
        self.llm_duration.labels(provider, model).observe(call.duration)
        if call.input_tokens:
            self.llm_tokens.labels(provider, model, "input").inc(call.input_tokens)
        if call.output_tokens:
            self.llm_tokens.labels(provider, model, "output").inc(call.output_tokens)


class _BreakerStates(Collector):
    """One gauge per breaker and state, 1 for its current state (read at scrape time)."""

    def __init__(self, name: str, registries: tuple[BreakerRegistry, ...]) -> None:
        self.name = name
        self.registries = registries

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for registry in self.registries:
            for breaker in registry:
                current = breaker.state
                for state in CircuitState:
                    family.add_metric([breaker.name, state.value], float(state is current))
        yield family

    def _family(self) -> GaugeMetricFamily:
        help = "Circuit breaker state: 1 for the state it is in."
        return GaugeMetricFamily(self.name, help, labels=["breaker", "state"])
