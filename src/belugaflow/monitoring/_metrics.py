"""Prometheus metrics of an orchestrator's runs, read from the one event seam.

:class:`Metrics` is an event hook (runs and nodes, both engines) and an LLM hook (model calls);
breaker states are read when Prometheus scrapes, so a breaker costs nothing between scrapes.
Names follow the use case: with the default prefix ``workflow`` they are
``workflows_started_total``, ``workflow_duration_seconds``, ``workflow_activities_total``,
``workflow_failures_total`` and ``workflow_retries_total``. Labels carry names, never ids.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .._events import Event, EventKind
from ..resilience import BreakerRegistry, CircuitState

if TYPE_CHECKING:
    from ..llms import LLMCall

__all__ = ["Metrics", "failure_code"]

_go_float: Callable[[float], str] = floatToGoString  # how Prometheus writes ``le``; untyped

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
    """The failure type of a metric label: the stable ``code`` of a belugaflow error, the
    ``type`` of a Temporal application error (a hand-written workflow's failure, or its
    cause's), else ``"error"``."""
    while error is not None:
        for attribute in ("code", "type"):
            found = getattr(error, attribute, None)
            if isinstance(found, str) and found:
                return found
        error = error.__cause__
    return "error"


class _Histogram:
    """Observations of one series: a count per bucket (the last is +Inf) and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0


class Metrics(Collector):
    """Every metric of one orchestrator, in its own registry (so two orchestrators in one
    process never clash).

    Attach :meth:`on_event` as an event hook and :meth:`on_llm_call` as an LLM hook; expose
    :attr:`registry` (``prometheus_client.generate_latest(metrics.registry)``). Events only
    add to plain counters under one lock; the Prometheus families are built when scraped,
    which keeps a node's cost to a dictionary update.
    """

    def __init__(self, prefix: str = "workflow", breakers: Iterable[BreakerRegistry] = ()) -> None:
        self.prefix = prefix
        self.breakers = tuple(breakers)
        self._lock = threading.Lock()
        self._started: Counter[tuple[str, str]] = Counter()
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._failures: Counter[tuple[str, str, str]] = Counter()
        self._durations: dict[tuple[str, str, str], _Histogram] = {}
        self._attempts: Counter[tuple[str, str, str, str]] = Counter()
        self._node_durations: dict[tuple[str, str, str, str], _Histogram] = {}
        self._retries: Counter[tuple[str, str, str]] = Counter()
        self._waiting: Counter[tuple[str, str]] = Counter()
        self._parked: Counter[tuple[str, str, str]] = Counter()
        self._llm_calls: Counter[tuple[str, str, str]] = Counter()
        self._llm_tokens: Counter[tuple[str, str, str]] = Counter()
        self._llm_durations: dict[tuple[str, str], _Histogram] = {}
        # Runs and waits this process counted, so a gauge only goes down for what went up here
        # (a durable run may end on another worker than the one that started it).
        self._open: dict[str, tuple[str, str]] = {}
        self._waits: dict[str, set[str | None]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def on_event(self, event: Event) -> None:
        """The event hook: records one run or node event."""
        kind = event.kind
        if kind is _NODE_STARTED:
            return
        if kind is _NODE_COMPLETED and event.attempt:
            self._attempt(event, "completed")
        elif kind is _NODE_COMPLETED:  # attempt 0: a wait ended (a value, or its timeout)
            with self._lock:
                waits = self._waits.get(event.run_id)
                if waits is not None and event.node in waits:
                    waits.discard(event.node)
                    self._waiting[event.graph, event.engine] -= 1
        elif kind is EventKind.NODE_RETRY_SCHEDULED:
            self._attempt(event, "retried")
            with self._lock:
                self._retries[event.graph, f"{event.node}", event.engine] += 1
        elif kind is EventKind.NODE_FAILED:
            self._attempt(event, "failed")
        elif kind is EventKind.RUN_STARTED:
            run = (event.graph, event.engine)
            with self._lock:
                self._started[run] += 1
                self._in_flight[run] += 1
                self._open[event.run_id] = run
        elif kind in _RUN_ENDS:
            self._end_run(event, _RUN_ENDS[kind])
        elif kind is EventKind.NODE_WAITING:
            with self._lock:
                self._waiting[event.graph, event.engine] += 1
                self._waits.setdefault(event.run_id, set()).add(event.node)
        elif kind is EventKind.NODE_PARKED:
            with self._lock:
                self._parked[event.graph, f"{event.node}", event.engine] += 1

    def _attempt(self, event: Event, outcome: str) -> None:
        key = (event.graph, f"{event.node}", event.engine, outcome)
        with self._lock:
            self._attempts[key] += 1
            if event.duration is not None:
                _observe(self._node_durations, key, event.duration, NODE_BUCKETS)

    def _end_run(self, event: Event, outcome: str) -> None:
        run = (event.graph, event.engine)
        with self._lock:
            if event.duration is not None:
                _observe(self._durations, (*run, outcome), event.duration, RUN_BUCKETS)
            if outcome == "failed":
                self._failures[(*run, failure_code(event.error))] += 1
            counted = self._open.pop(event.run_id, None)
            if counted is not None:
                self._in_flight[counted] -= 1
            waits = self._waits.pop(event.run_id, ())
            if waits:
                self._waiting[run] -= len(waits)

    def on_llm_call(self, call: LLMCall) -> None:
        """The LLM hook: records one model call (all its attempts)."""
        model = (call.provider, call.model)
        with self._lock:
            self._llm_calls[(*model, call.outcome)] += 1
            _observe(self._llm_durations, model, call.duration, LLM_BUCKETS)
            if call.input_tokens:
                self._llm_tokens[(*model, "input")] += call.input_tokens
            if call.output_tokens:
                self._llm_tokens[(*model, "output")] += call.output_tokens

    def collect(self) -> Iterator[Metric]:
        """The Prometheus families, built from the counts at this moment."""
        p = self.prefix
        run = ["workflow", "engine"]
        node = ["workflow", "activity", "engine"]
        llm = ["provider", "model"]
        with self._lock:
            yield _counter(f"{p}s_started", "Runs started.", run, self._started)
            yield _histogram(
                f"{p}_duration_seconds", "Seconds from a run's start to its end, by outcome.",
                [*run, "outcome"], self._durations, RUN_BUCKETS,
            )  # fmt: skip
            yield _counter(
                f"{p}_failures", "Runs that failed, by the error's code.", [*run, "code"],
                self._failures,
            )  # fmt: skip
            yield _gauge(
                f"{p}_runs_in_flight", "Runs started in this process and not ended.", run,
                self._in_flight,
            )  # fmt: skip
            yield _counter(
                f"{p}_activities",
                "Node (activity) attempts that ended, by outcome: completed, retried or failed.",
                [*node, "outcome"],
                self._attempts,
            )
            yield _counter(
                f"{p}_retries", "Node attempts that failed and were retried.", node, self._retries
            )
            yield _histogram(
                f"{p}_node_duration_seconds", "Seconds one node attempt took, by outcome.",
                [*node, "outcome"], self._node_durations, NODE_BUCKETS,
            )  # fmt: skip
            yield _gauge(
                f"{p}_waits_in_progress", "Wait nodes waiting for their signal.", run,
                self._waiting,
            )  # fmt: skip
            yield _counter(
                f"{p}_nodes_parked", "Nodes that failed for good and parked their run.", node,
                self._parked,
            )  # fmt: skip
            yield _counter(
                f"{p}_llm_calls", "Model calls, by outcome.", [*llm, "outcome"], self._llm_calls
            )
            yield _counter(
                f"{p}_llm_tokens", "Tokens of model calls, by type: input or output.",
                [*llm, "type"], self._llm_tokens,
            )  # fmt: skip
            yield _histogram(
                f"{p}_llm_call_duration_seconds", "Seconds a model call took, all attempts.",
                llm, self._llm_durations, LLM_BUCKETS,
            )  # fmt: skip
        states = GaugeMetricFamily(
            f"{p}_circuit_breaker_state",
            "Circuit breaker state: 1 for the state it is in.",
            labels=["breaker", "state"],
        )
        for registry in self.breakers:
            for breaker in registry:
                current = breaker.state  # read now: an open breaker may have become half-open
                for state in CircuitState:
                    states.add_metric([breaker.name, state.value], float(state is current))
        yield states


_NODE_STARTED, _NODE_COMPLETED = EventKind.NODE_STARTED, EventKind.NODE_COMPLETED


def _observe(
    series: dict[Any, _Histogram], key: Any, value: float, bounds: tuple[float, ...]
) -> None:
    histogram = series.get(key)
    if histogram is None:
        histogram = series[key] = _Histogram(len(bounds) + 1)
    histogram.counts[bisect_left(bounds, value)] += 1  # le: the first bound >= value
    histogram.sum += value


def _counter(
    name: str, help: str, labels: list[str], counts: Mapping[Any, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help, labels=labels)
    for key, count in counts.items():
        family.add_metric(list(key), count)
    return family


def _gauge(
    name: str, help: str, labels: list[str], values: Mapping[Any, float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _histogram(
    name: str,
    help: str,
    labels: list[str],
    series: Mapping[Any, _Histogram],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help, labels=labels)
    edges = [_go_float(bound) for bound in bounds] + ["+Inf"]
    for key, histogram in series.items():
        cumulative = list(accumulate(histogram.counts))
        family.add_metric(list(key), list(zip(edges, cumulative, strict=True)), histogram.sum)
    return family
