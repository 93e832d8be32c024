"""A durable run's :class:`~belugaflow.graph._timeline.Timeline`, read from its Temporal history.

Every attempt of a graph node is an attempt of one activity (``belugaflow.node``, a local
activity for a ``short`` node), retried by Temporal; routers (``belugaflow.route``) are
decisions, not rows. A hand-written workflow's rows are its activity types. Temporal writes an
activity's attempts into history only when it closes, so for activities still open the
workflow's pending activities (``describe()``) say which attempt runs, or that it is between two.

What history does not record is inferred from the graph, when known: a wait node waited from
the end of the nodes before it until its signal came (or its timeout route was taken), and a
node without any record in a completed run was skipped. A node skipped by a route in a run that
has not completed (still running, or failed) has no row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client, WorkflowHistory

from ..graph import GraphSpec
from ..graph._board import signal_problems
from ..graph._timeline import Outcome, Row, Timeline, TimelineBuilder
from ._history import (
    RUN_ENDS,
    UNREADABLE,
    event_time,
    failure_text,
    local_activity,
    node_of,
    payload_value,
    stamp,
)
from ._messages import GRAPH_WORKFLOW

__all__ = ["GRAPH_WORKFLOW", "fetch_timeline", "timeline_from_history"]


async def fetch_timeline(
    client: Client,
    workflow_id: str,
    *,
    graphs: Mapping[str, Mapping[int, GraphSpec]] | None = None,
) -> Timeline:
    """The timeline of the latest run of ``workflow_id``.

    A ``belugaflow.graph`` run's graph comes from its input; a graph run by name finds its
    graph in ``graphs`` (name -> version -> spec, an orchestrator's ``registry.graphs``) by
    the name and version in its memo.

    Raises:
        temporalio.service.RPCError: no such workflow (status ``NOT_FOUND``), or the server
            cannot be reached.
    """
    handle = client.get_workflow_handle(workflow_id)
    # Describe first: an activity that closes in between is read from history, which wins.
    description = await handle.describe()
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    spec: GraphSpec | None = None
    if started.workflow_type.name == GRAPH_WORKFLOW:
        try:
            [arg] = await client.data_converter.decode(started.input.payloads)
            spec = GraphSpec.from_dict(arg["spec"])
        except Exception:  # an input this client cannot read: rows without the drawing
            spec = None
    elif graphs is not None:
        memo = await description.memo()
        name, version = memo.get("graph"), memo.get("version")
        if name == started.workflow_type.name and isinstance(version, int):
            spec = graphs.get(name, {}).get(version)
    pending = description.raw_description.pending_activities
    waiting: list[str] = []
    if (
        spec is not None
        and spec.waits
        and history.events[-1].WhichOneof("attributes") not in RUN_ENDS
    ):
        # Only the run knows which waits it is in: history shows a wait once it has ended.
        with contextlib.suppress(Exception):  # it ended meanwhile, or is an older version
            progress = await handle.query("progress")
            waiting = [entry["node"] for entry in progress.get("waiting", ())]
    return timeline_from_history(history, spec=spec, pending=pending, waiting=waiting)


def timeline_from_history(
    history: WorkflowHistory,
    *,
    spec: GraphSpec | None = None,
    pending: Sequence[PendingActivityInfo] = (),
    waiting: Collection[str] = (),
) -> Timeline:
    """The timeline of the run ``history`` records; ``spec`` is its graph (if known),
    ``pending`` the run's pending activities and ``waiting`` the wait nodes it was waiting in
    (its ``progress`` query) when it was read."""
    events = history.events
    started = events[0].workflow_execution_started_event_attributes
    graph = spec.name if spec else started.workflow_type.name
    builder = TimelineBuilder(history.workflow_id, graph)
    builder.start = event_time(events[0])
    reader = _Reader(builder, spec)
    for event in events:
        kind = event.WhichOneof("attributes")
        if kind in RUN_ENDS:
            builder.status, builder.end = RUN_ENDS[kind], event_time(event)
        else:
            reader.read(kind, event)
    reader.still_open({info.activity_id: info for info in pending})
    if spec is not None:
        _waits(builder, spec, reader.signals, waiting)
        if builder.status == "completed":
            for node in spec.nodes:
                if node.name not in builder.rows:
                    builder.row(node.name).outcome = "skipped"
    return builder.build(spec)


class _Reader:
    """Activities and signals, event by event."""

    def __init__(self, builder: TimelineBuilder, spec: GraphSpec | None) -> None:
        self.builder = builder
        self.spec = spec
        self.names: Collection[str] = {n.name for n in spec.nodes} if spec else ()
        self.open: dict[int, tuple[Row, str, bool]] = {}
        """Scheduled event id -> row, activity id, whether it is a graph node."""
        self.attempt: dict[int, int] = {}
        """Scheduled event id -> the attempt that started last (written when it closed)."""
        self.retried: dict[int, Failure] = {}
        """Scheduled event id -> the failure of the attempt before the last one."""
        self.local_attempts: dict[int, int] = {}
        """Local activity seq -> attempts counted (a retried one records several markers)."""
        self.signals: list[tuple[datetime, str, Any]] = []

    def read(self, kind: str | None, event: HistoryEvent) -> None:
        when = event_time(event)
        if kind == "activity_task_scheduled_event_attributes":
            scheduled = event.activity_task_scheduled_event_attributes
            found = self._row(scheduled.activity_type.name, scheduled.activity_id)
            if found is not None:
                row, is_node = found
                row.begin(when)
                self.open[event.event_id] = (row, scheduled.activity_id, is_node)
        elif kind == "activity_task_started_event_attributes":
            began = event.activity_task_started_event_attributes
            self.attempt[began.scheduled_event_id] = began.attempt
            if began.HasField("last_failure"):  # the attempt before, for a retried one
                self.retried[began.scheduled_event_id] = began.last_failure
        elif kind == "activity_task_completed_event_attributes":
            self._close(event.activity_task_completed_event_attributes.scheduled_event_id, when)
        elif kind == "activity_task_failed_event_attributes":
            failed = event.activity_task_failed_event_attributes
            self._close(failed.scheduled_event_id, when, failed.failure)
        elif kind == "activity_task_timed_out_event_attributes":
            timed_out = event.activity_task_timed_out_event_attributes
            self._close(timed_out.scheduled_event_id, when, timed_out.failure)
        elif kind == "activity_task_canceled_event_attributes":
            sid = event.activity_task_canceled_event_attributes.scheduled_event_id
            if sid in self.open:
                row = self.open.pop(sid)[0]
                row.attempts += self.attempt.get(sid, 0)
                row.close(when, "cancelled")
        elif kind == "marker_recorded_event_attributes":
            self._local_activity(event)
        elif kind == "workflow_execution_signaled_event_attributes":
            signaled = event.workflow_execution_signaled_event_attributes
            value = payload_value(signaled.input.payloads)
            self.signals.append((when, signaled.signal_name, value))
        elif kind == "workflow_execution_update_accepted_event_attributes":
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            value = payload_value(request.input.args.payloads)
            self.signals.append((when, request.input.name, value))

    def _row(self, activity_type: str, activity_id: str) -> tuple[Row, bool] | None:
        """The row an activity counts for, and whether it is a graph node; None for a router."""
        found = node_of(activity_type, activity_id, self.names)
        if found is None:
            return None
        return self.builder.row(found[0]), found[1]

    def _failed(self, row: Row, is_node: bool) -> Outcome:
        """A graph node that failed for good parks its run if its policy says so (or, without
        the graph, if the run goes on); the run's end settles it."""
        if not is_node:
            return "failed"
        node = next((n for n in self.spec.nodes if n.name == row.node), None) if self.spec else None
        return "failed" if node is not None and node.on_failure != "park" else "parked"

    def _close(self, sid: int, when: datetime, failure: Failure | None = None) -> None:
        if sid not in self.open:
            return
        row, _, is_node = self.open.pop(sid)
        row.attempts += self.attempt.get(sid, 1)
        if failure is None:
            row.close(when, "completed")
            if sid in self.retried:
                row.error = failure_text(self.retried[sid])
        else:
            row.close(when, self._failed(row, is_node))
            row.error = failure_text(failure)

    def _local_activity(self, event: HistoryEvent) -> None:
        data = local_activity(event)
        if data is None:
            return
        marker = event.marker_recorded_event_attributes
        found = self._row(data["activity_type"], data["activity_id"])
        if found is None:
            return
        row, is_node = found
        seq, attempt = data["seq"], data["attempt"]
        row.attempts += attempt - self.local_attempts.get(seq, 0)
        self.local_attempts[seq] = attempt
        start = stamp(data.get("original_schedule_time")) or event_time(event)
        row.begin(start)
        # The worker's clock stamps both times; never let the end come before the start.
        end = max(start, stamp(data.get("complete_time")) or event_time(event))
        if not marker.HasField("failure"):
            row.close(end, "completed")
        elif data.get("backoff"):  # Temporal retries it after a timer
            row.outcome, row.error = "retrying", failure_text(marker.failure)
        else:
            row.close(end, self._failed(row, is_node))
            row.error = failure_text(marker.failure)

    def still_open(self, pending: Mapping[str, PendingActivityInfo]) -> None:
        """Activities with no close in history: running, or waiting for their next attempt."""
        for row, activity_id, _ in self.open.values():
            info = pending.get(activity_id)
            if info is None:  # the run ended, or the activity began after ``describe``
                row.attempts += 1
                continue
            between = info.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            if between and info.attempt > 1:
                row.attempts += info.attempt - 1
                row.outcome = "retrying"
                row.error = failure_text(info.last_failure)
            else:
                row.attempts += info.attempt
        self.open.clear()


def _waits(
    builder: TimelineBuilder,
    spec: GraphSpec,
    signals: list[tuple[datetime, str, Any]],
    waiting: Collection[str],
) -> None:
    """Rows for the wait nodes the run reached. History records a wait only by its end: the
    signal it took, or its timeout route starting; one still waiting is in ``waiting``. A wait
    whose node before completed but whose route went elsewhere has no row."""
    rows = builder.rows
    for node in spec.nodes:  # declaration order: a wait after a wait finds its row
        if node.wait is None:
            continue
        ready = [rows[p].end for p in _before(spec, node.name) if _completed(rows.get(p))]
        if node.name in spec.entry:
            ready.append(builder.start)
        began = max((t for t in ready if t is not None), default=None)
        if began is None:
            continue
        took = next(
            (
                when
                for when, name, value in signals
                if name == node.wait.signal
                and (value is UNREADABLE or not signal_problems(spec, name, value))
            ),
            None,
        )
        after = rows.get(node.wait.on_timeout or "")
        timed_out = after is not None and after.start is not None
        if took is None and not timed_out and node.name not in waiting:
            continue  # not reached (a route went elsewhere), or ended with the run
        row = builder.row(node.name)
        row.begin(began, "waiting")
        if took is not None:  # a signal sent before the wait began waited for it
            row.close(max(took, began), "completed")
        elif after is not None and after.start is not None:
            row.close(after.start, "completed")


def _before(spec: GraphSpec, name: str) -> Iterator[str]:
    """The nodes whose edges, routes or timeout lead to ``name``."""
    yield from (edge.source for edge in spec.edges if edge.target == name)
    for router in spec.routers:
        if any(target == name for _, target in router.routes):
            yield router.source
    yield from (n.name for n in spec.nodes if n.wait is not None and n.wait.on_timeout == name)


def _completed(row: Row | None) -> bool:
    return row is not None and row.outcome == "completed"
