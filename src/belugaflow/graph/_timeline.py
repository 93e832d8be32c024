"""A run's timeline: each node with its first start, end, attempts, outcome and last error.

One :class:`Timeline` shape for both engines: :meth:`Timeline.from_events` reads the events of
a run in process (what ``stream`` yields or a hook receives), and
``belugaflow.temporal._timeline`` reads a durable run's Temporal history into the same
:class:`TimelineBuilder`. For the same graph and the same course of events, both give the same
rows and outcomes (times naturally differ).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from .._errors import NodeFailedError, RunTimeoutError
from .._events import Event, EventKind
from ._mermaid import to_mermaid
from ._spec import GraphSpec

__all__ = [
    "OUTCOMES",
    "NodeTimeline",
    "Outcome",
    "Row",
    "RunStatus",
    "Timeline",
    "TimelineBuilder",
    "error_text",
]

Outcome = Literal[
    "completed", "failed", "retrying", "running", "waiting", "parked", "skipped", "cancelled"
]
"""Where a node stands: ``retrying`` is between two attempts, ``parked`` waits for an
operator; ``skipped`` was not taken by a route (or skipped by an operator after it failed)."""
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

RunStatus = Literal[
    "running", "completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new"
]
"""A run's status, as Temporal names them (``terminated`` and ``continued_as_new`` happen only
there)."""

_OPEN: frozenset[str] = frozenset({"running", "retrying", "waiting", "parked"})


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeTimeline:
    """One node of a run (a step of a hand-written workflow: one activity type)."""

    node: str
    outcome: Outcome
    attempts: int = 0
    """Attempts made, over every run of the node (a loop, an operator's retry); 0 for a wait
    node and a skipped one."""
    start: datetime | None = None
    """When it first started (on Temporal: when its first activity was scheduled)."""
    end: datetime | None = None
    """When it last ended (a parked node: when its last attempt failed); None while it runs
    or waits."""
    error: str | None = None
    """The last error, ``Type: message``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; times as ISO 8601 strings."""
        return {
            "node": self.node,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """What a run did, node by node: nodes that started, in the order they started, then those
    that never did (skipped)."""

    run_id: str
    """The run's id: the workflow id on Temporal."""
    graph: str
    """The graph's name, or the workflow type of a hand-written workflow."""
    status: RunStatus
    start: datetime | None = None
    end: datetime | None = None
    nodes: tuple[NodeTimeline, ...] = ()
    spec: GraphSpec | None = field(default=None, compare=False, repr=False)
    """The graph, when known: :meth:`to_mermaid` draws it."""

    @classmethod
    def from_events(cls, events: Iterable[Event], spec: GraphSpec | None = None) -> Timeline:
        """The timeline of one run in process, from its events in the order they happened
        (a finished run's or one still going)."""
        builder = TimelineBuilder()
        for event in events:
            builder.run_id, builder.graph = event.run_id, event.graph
            when = datetime.fromtimestamp(event.time, UTC)
            kind = event.kind
            if kind is EventKind.RUN_STARTED:
                builder.start = when
            elif kind in _RUN_ENDS:
                builder.end = when
                builder.status = _RUN_ENDS[kind]
                if isinstance(event.error, RunTimeoutError):
                    builder.status = "timed_out"
            elif event.node is not None:
                _apply(builder.row(event.node), event, when)
        return builder.build(spec)

    def node(self, name: str) -> NodeTimeline:
        """The row of node ``name``.

        Raises:
            KeyError: the run has no such row.
        """
        for row in self.nodes:
            if row.node == name:
                return row
        raise KeyError(f"run {self.run_id!r} has no node {name!r}")

    def to_mermaid(self) -> str | None:
        """The graph as Mermaid, each node coloured by its outcome; None without the graph."""
        if self.spec is None:
            return None
        return to_mermaid(self.spec, {row.node: row.outcome for row in self.nodes})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, with the Mermaid drawing (or None)."""
        return {
            "run_id": self.run_id,
            "graph": self.graph,
            "status": self.status,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "nodes": [row.to_dict() for row in self.nodes],
            "mermaid": self.to_mermaid(),
        }


@dataclass(slots=True)
class Row:
    """A row while a :class:`TimelineBuilder` reads a run (mutable; built into a
    :class:`NodeTimeline`)."""

    node: str
    outcome: Outcome = "running"
    attempts: int = 0
    start: datetime | None = None
    end: datetime | None = None
    error: str | None = None

    def begin(self, when: datetime, outcome: Outcome = "running") -> None:
        if self.start is None or when < self.start:
            self.start = when
        self.end = None
        self.outcome = outcome

    def close(self, when: datetime | None, outcome: Outcome, error: str | None = None) -> None:
        self.end = when
        self.outcome = outcome
        if error is not None:
            self.error = error


class TimelineBuilder:
    """Collects a run's rows as its record is read, in order; both engines' readers feed it.
    Rows are created on first mention; :meth:`build` settles what the run's end decided."""

    def __init__(self, run_id: str = "", graph: str = "") -> None:
        self.run_id = run_id
        self.graph = graph
        self.status: RunStatus = "running"
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.rows: dict[str, Row] = {}

    def row(self, node: str) -> Row:
        """The row of ``node``, created if new."""
        found = self.rows.get(node)
        if found is None:
            found = self.rows[node] = Row(node)
        return found

    def build(self, spec: GraphSpec | None = None) -> Timeline:
        """The timeline. Once the run has ended nothing is open: in a completed run what was
        open completed (a parked node was skipped by its operator), in a failed one a parked
        node failed, and the rest was cancelled."""
        order = {node.name: i for i, node in enumerate(spec.nodes)} if spec else {}
        rows = [*self.rows.values()]
        if self.status != "running":
            for row in rows:
                if row.outcome in _OPEN:
                    row.outcome = _settle(row.outcome, self.status)
        # Started rows by their start, then the rest in graph order (stable: first mention).
        rows.sort(key=lambda r: (r.start is None, r.start or _EPOCH, order.get(r.node, len(order))))
        nodes = tuple(
            NodeTimeline(
                node=r.node,
                outcome=r.outcome,
                attempts=r.attempts,
                start=r.start,
                end=r.end,
                error=r.error,
            )
            for r in rows
        )
        return Timeline(
            run_id=self.run_id,
            graph=self.graph,
            status=self.status,
            start=self.start,
            end=self.end,
            nodes=nodes,
            spec=spec,
        )


def _settle(outcome: Outcome, status: RunStatus) -> Outcome:
    if status == "completed":
        return "skipped" if outcome == "parked" else "completed"
    if status == "cancelled" or outcome != "parked":
        return "cancelled"
    return "failed"


def error_text(error: BaseException) -> str:
    """``Type: message`` of a node's error (the node's own error, for a node that failed)."""
    if isinstance(error, NodeFailedError) and error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


_EPOCH = datetime.fromtimestamp(0, UTC)

_RUN_ENDS: dict[EventKind, RunStatus] = {
    EventKind.RUN_COMPLETED: "completed",
    EventKind.RUN_FAILED: "failed",
    EventKind.RUN_CANCELLED: "cancelled",
}


def _apply(row: Row, event: Event, when: datetime) -> None:
    """What one node event says about its node."""
    kind = event.kind
    error = error_text(event.error) if event.error is not None else None
    if kind is EventKind.NODE_STARTED:
        row.attempts += 1
        row.begin(when)
    elif kind is EventKind.NODE_WAITING:
        row.begin(when, "waiting")
    elif kind is EventKind.NODE_COMPLETED:
        row.close(when, "completed")
    elif kind is EventKind.NODE_RETRY_SCHEDULED:
        row.outcome, row.error = "retrying", error or row.error
    elif kind is EventKind.NODE_FAILED:
        row.close(when, "failed", error)
    elif kind is EventKind.NODE_PARKED:
        row.outcome = "parked"
    elif kind is EventKind.NODE_SKIPPED:
        row.outcome = "skipped"
