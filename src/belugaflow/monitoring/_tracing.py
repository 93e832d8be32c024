"""OpenTelemetry spans of an orchestrator's runs, nodes and model calls, read from the one event
seam (where they are exported: :mod:`._otlp`).

:class:`Tracing` is an event hook (runs and nodes) and an LLM hook (model calls), as
:class:`~belugaflow.monitoring.Metrics` is. It never makes a span of its own accord: a run
span opens on ``run.started`` and closes on the run's end, a node span opens on
``node.started`` and closes on that attempt's completion, retry or failure, and a model call
becomes a ``chat {model}`` span (GenAI conventions) once it is over, timed from its duration.
Spans are kept by run id and node until they close; nothing stays open once a run ends.

Parents: a run span's is the caller's current span (a run starts in the caller's task) or,
for a run started inside a node, that node's span. A node span's is its run's span or, on
Temporal, the activity's ``RunActivity`` span (the node's events are emitted in the activity's
task, where Temporal's tracing interceptor made it current). A model call's is the span of the
node running it, found through :mod:`belugaflow._context`, else the current span.

On Temporal, the run's events come from workflow code, which must not make spans (it replays):
they are skipped, and Temporal's ``StartWorkflow``/``RunWorkflow`` spans stand for the run.

Only the OpenTelemetry API is imported here; exporting (:mod:`._otlp`) needs the ``otel``
extra.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _context
from .._events import Event, EventKind
from ._metrics import failure_code

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

    from ..llms import LLMCall

__all__ = ["FLUSH_TIMEOUT", "Tracing", "within"]

FLUSH_TIMEOUT = 5.0
"""Seconds a flush (a worker's shutdown, the process's exit) waits for spans to be delivered."""

_NODE_STARTED = EventKind.NODE_STARTED
_NODE_COMPLETED = EventKind.NODE_COMPLETED
_NODE_RETRY = EventKind.NODE_RETRY_SCHEDULED
_NODE_FAILED = EventKind.NODE_FAILED
_RUN_STARTED = EventKind.RUN_STARTED
_RUN_ENDS = {
    EventKind.RUN_COMPLETED: "completed",
    EventKind.RUN_FAILED: "failed",
    EventKind.RUN_CANCELLED: "cancelled",
}
_RUN_NOTES = {
    EventKind.NODE_SKIPPED: "node skipped",
    EventKind.NODE_PARKED: "node parked",
    EventKind.SIGNAL_DROPPED: "signal dropped",
}
_CLIENT = SpanKind.CLIENT


class Tracing:
    """Spans of every run, node attempt and model call of one orchestrator, made with
    ``provider``'s tracer (instrumentation scope ``belugaflow``).

    Attach :meth:`on_event` as an event hook and :meth:`on_llm_call` as an LLM hook (an
    :class:`~belugaflow.Orchestrator` with ``otel_endpoint`` or ``tracer_provider`` does).

    Span names: ``run {graph}``, ``node {node}``, ``wait {node}`` and ``chat {model}``;
    attributes ``belugaflow.graph``, ``belugaflow.run_id``, ``belugaflow.engine``, and on
    nodes ``belugaflow.node``, ``belugaflow.attempt``, then ``belugaflow.outcome``
    (``completed``, ``retried``, ``failed``, ``cancelled``) and ``error.type`` when it failed.
    Model calls carry :attr:`LLMCall.attributes <belugaflow.llms.LLMCall.attributes>` (the
    ``gen_ai.*`` attributes).
    """

    def __init__(self, provider: trace.TracerProvider) -> None:
        from .. import __version__

        self.provider = provider
        """Where the spans go."""
        self.tracer = provider.get_tracer("belugaflow", __version__)
        # run id -> (run span, a context holding it: the parent of its node spans, the nodes
        # that opened a span in it: what its end closes, without scanning other runs' nodes)
        self._runs: dict[str, tuple[Span, Context, set[str | None]]] = {}
        # (run id, node) -> (attempt, node span); attempt 0 for a wait
        self._nodes: dict[tuple[str | None, str | None], tuple[int, Span]] = {}
        # A model call finds the span of the node that makes it through the node's scope.
        _context.enable()

    def __repr__(self) -> str:
        return f"<Tracing runs={len(self._runs)} nodes={len(self._nodes)} open>"

    # -- the event hook --------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The event hook: opens or closes the span of a run or a node attempt."""
        kind = event.kind
        if kind is _NODE_STARTED:
            run = self._runs.get(event.run_id)
            span = self.tracer.start_span(
                f"node {event.node}",
                None if run is None else run[1],  # None: the activity's span, on Temporal
                attributes={
                    "belugaflow.graph": event.graph,
                    "belugaflow.node": f"{event.node}",
                    "belugaflow.run_id": event.run_id,
                    "belugaflow.attempt": event.attempt,
                    "belugaflow.engine": event.engine,
                },
            )
            if run is not None:
                run[2].add(event.node)
            key = (event.run_id, event.node)
            stale = self._nodes.get(key)
            self._nodes[key] = (event.attempt, span)
            if stale is not None:  # an attempt that never reported its end
                _end(stale[1], "cancelled")
        elif kind is _NODE_COMPLETED:
            self._end_node(event, "completed", None)
        elif kind is _NODE_RETRY:
            self._end_node(event, "retried", event.error)
        elif kind is _NODE_FAILED:
            error = event.error  # a NodeFailedError: the node's own error is its cause
            self._end_node(event, "failed", None if error is None else error.__cause__ or error)
        elif event.engine == "temporal":
            return  # the rest comes from workflow code, which makes no spans
        elif kind is _RUN_STARTED:
            self._start_run(event)
        elif kind in _RUN_ENDS:
            self._end_run(event, _RUN_ENDS[kind])
        elif kind is EventKind.NODE_WAITING:
            run = self._runs.get(event.run_id)
            span = self.tracer.start_span(
                f"wait {event.node}",
                None if run is None else run[1],
                attributes={
                    "belugaflow.graph": event.graph,
                    "belugaflow.node": f"{event.node}",
                    "belugaflow.run_id": event.run_id,
                    "belugaflow.engine": event.engine,
                },
            )
            self._nodes[event.run_id, event.node] = (0, span)
            if run is not None:
                run[2].add(event.node)
        elif kind in _RUN_NOTES:
            run = self._runs.get(event.run_id)
            if run is not None:
                attributes: dict[str, str] = {"belugaflow.node": f"{event.node}"}
                if event.error is not None:
                    attributes["error.type"] = type(event.error).__name__
                run[0].add_event(_RUN_NOTES[kind], attributes)

    def _end_node(self, event: Event, outcome: str, error: BaseException | None) -> None:
        key = (event.run_id, event.node)
        found = self._nodes.pop(key, None)
        if found is None:
            return  # it started in another process, or tracing started after it
        attempt, span = found
        if attempt != event.attempt:  # not the attempt that is open: leave that one be
            self._nodes[key] = found
            return
        if event.delay is not None:  # a retry
            span.set_attribute("belugaflow.retry_delay", event.delay)
        _end(span, outcome, error)

    def _start_run(self, event: Event) -> None:
        parent = None
        scope = _context.node_scope.get()
        if scope is not None:  # a run started by a node (a sub-graph): under that node
            node = self._nodes.get((scope[2], scope[1]))
            if node is not None:
                parent = trace.set_span_in_context(node[1])
        span = self.tracer.start_span(
            f"run {event.graph}",
            parent,  # None: the caller's current span
            attributes={
                "belugaflow.graph": event.graph,
                "belugaflow.run_id": event.run_id,
                "belugaflow.engine": event.engine,
            },
        )
        self._runs[event.run_id] = (span, trace.set_span_in_context(span), set())

    def _end_run(self, event: Event, outcome: str) -> None:
        run_id = event.run_id
        found = self._runs.pop(run_id, None)
        if found is None:
            return
        for node in found[2]:  # attempts the run's end cut short (a cancel, a timeout)
            open_node = self._nodes.pop((run_id, node), None)
            if open_node is not None:
                _end(open_node[1], "cancelled")
        span = found[0]
        span.set_attribute("belugaflow.outcome", outcome)
        error = event.error
        if outcome == "failed" and error is not None:
            span.set_attribute("error.type", failure_code(error))
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def end_attempt(self, run_id: str, node: str, attempt: int, outcome: str = "cancelled") -> None:
        """Close the span of ``node``'s ``attempt`` in ``run_id`` if it is still open: for an
        attempt that ends without an event (a cancelled activity)."""
        found = self._nodes.get((run_id, node))
        if found is not None and found[0] == attempt:
            del self._nodes[run_id, node]
            _end(found[1], outcome)

    # -- the LLM hook ----------------------------------------------------------------------------

    def on_llm_call(self, call: LLMCall) -> None:
        """The LLM hook: one ``chat {model}`` span (kind client) from the call's start to its
        end, under the span of the node that made it."""
        end = time.time_ns()
        parent = None
        scope = _context.node_scope.get()
        if scope is not None:
            node = self._nodes.get((scope[2], scope[1]))
            if node is not None:
                parent = trace.set_span_in_context(node[1])
        span = self.tracer.start_span(
            f"chat {call.model}",
            parent,
            kind=_CLIENT,
            attributes=call.attributes,
            start_time=end - int(call.duration * 1e9),
        )
        if call.error is not None:
            span.record_exception(call.error)
            span.set_status(Status(StatusCode.ERROR, f"{type(call.error).__name__}: {call.error}"))
        span.end(end)

    # -- delivery --------------------------------------------------------------------------------

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Export the spans that wait in the provider's batch, waiting at most ``timeout``
        seconds (an endpoint that does not answer holds the caller no longer); True if the
        export ended in time, delivered or given up on (an unreachable endpoint is said in
        the log)."""
        flush = getattr(self.provider, "force_flush", None)
        if flush is None:  # the API's provider: nothing to flush
            return True
        return within(flush, timeout)


def within(call: Callable[[], object], timeout: float) -> bool:
    """Call ``call`` in a daemon thread and wait at most ``timeout`` seconds for it to return;
    True if it did. The SDK's flush and shutdown ignore their timeouts (they wait out every
    retry of an export to an endpoint that is down); a daemon thread can be left behind."""
    done = threading.Event()

    def run() -> None:
        try:
            call()
        finally:
            done.set()

    threading.Thread(target=run, name="belugaflow-traces", daemon=True).start()
    return done.wait(timeout)


def _end(span: Span, outcome: str, error: BaseException | None = None) -> None:
    span.set_attribute("belugaflow.outcome", outcome)
    if error is not None:
        span.set_attribute("error.type", type(error).__name__)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
