"""Reading a run's Temporal history: which graph node an activity runs, failures as text, the
values of signals — shared by the timeline (:mod:`._timeline`) — and the history as a stream of
belugaflow events while the run goes on (:func:`watch`), which works in any process: it reads
the server's record, not a worker's hooks.

What history holds decides what the stream can say. Temporal writes an activity's scheduling
at once, but its *start* only when the attempt closes, together with the attempt's number and
the failure of the attempt before; attempts that failed and were retried leave no event of
their own. So a regular node shows as ``scheduled`` when it is ready, then ``started``,
``completed`` (or ``failed``) when it ends — preceded, for a retried one, by one
``retry_scheduled`` message naming the attempts that failed and the last error. A node run as a
local activity (``short=True``) leaves one marker per attempt when it ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from ..graph import GraphSpec
from ..graph._timeline import RunStatus
from ._messages import GRAPH_WORKFLOW, NODE_ACTIVITY, ROUTE_ACTIVITY

__all__ = [
    "LOCAL_ACTIVITY_MARKER",
    "RUN_ENDS",
    "UNREADABLE",
    "HistoryMessage",
    "MessageId",
    "event_time",
    "failure_text",
    "local_activity",
    "node_name",
    "node_of",
    "parse_message_id",
    "payload_value",
    "stamp",
    "watch",
]

RUN_ENDS: dict[str, RunStatus] = {
    "workflow_execution_completed_event_attributes": "completed",
    "workflow_execution_failed_event_attributes": "failed",
    "workflow_execution_canceled_event_attributes": "cancelled",
    "workflow_execution_terminated_event_attributes": "terminated",
    "workflow_execution_timed_out_event_attributes": "timed_out",
    "workflow_execution_continued_as_new_event_attributes": "continued_as_new",
}
"""The history events that end a run, by their attributes' field, and the status each gives."""

LOCAL_ACTIVITY_MARKER = "core_local_activity"
UNREADABLE = object()
"""A value this reader cannot decode (a codec's payload)."""

_FAILURE_KINDS = {
    "timeout_failure_info": "TimeoutError",
    "canceled_failure_info": "CancelledError",
    "terminated_failure_info": "TerminatedError",
    "server_failure_info": "ServerError",
}


def node_of(
    activity_type: str, activity_id: str, names: Collection[str]
) -> tuple[str, bool] | None:
    """The node an activity runs (a step of a hand-written workflow: its activity type), and
    whether it is a graph node; None for a router, which is a decision, not a node."""
    if activity_type == ROUTE_ACTIVITY:
        return None
    if activity_type == NODE_ACTIVITY:
        return node_name(activity_id, names), True
    return activity_type, False


def node_name(activity_id: str, names: Collection[str]) -> str:
    """The node a ``belugaflow.node`` activity runs, from the ids ``GraphWorkflow`` gives them:
    ``<step>:<node>``, ``<step>:<node>:retry-<n>`` (an operator's retry of a parked node) and
    ``undo:<node>`` (its compensation, named as in process). ``names`` are the graph's nodes,
    if known (a node whose own name ends in ``:retry-<n>`` keeps it)."""
    head, _, rest = activity_id.partition(":")
    if head == "undo":
        return f"{rest}.compensate"
    base, retry, round = rest.rpartition(":retry-")
    if retry and round.isdigit() and rest not in names:
        return base
    return rest


def failure_text(failure: Failure) -> str:
    """``Type: message``, as :func:`~belugaflow.graph._timeline.error_text` writes it."""
    info = failure.WhichOneof("failure_info")
    if info == "application_failure_info":
        kind = failure.application_failure_info.type or "Error"
    else:
        kind = _FAILURE_KINDS.get(info or "", "Error")
    return f"{kind}: {failure.message}" if failure.message else kind


def payload_value(payloads: Sequence[Any]) -> Any:
    """The first payload's value when it is plain JSON (None without one), else
    :data:`UNREADABLE`."""
    if not payloads:
        return None
    if payloads[0].metadata.get("encoding") != b"json/plain":
        return UNREADABLE
    try:
        return json.loads(payloads[0].data)
    except ValueError:
        return UNREADABLE


def event_time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


def stamp(value: Mapping[str, int] | None) -> datetime | None:
    """A ``{"seconds", "nanos"}`` timestamp of a local activity's marker."""
    if not value:
        return None
    return datetime.fromtimestamp(value.get("seconds", 0) + value.get("nanos", 0) / 1e9, UTC)


def local_activity(event: HistoryEvent) -> dict[str, Any] | None:
    """What a local activity's marker records (``activity_type``, ``activity_id``, ``seq``,
    ``attempt``, ``backoff``, times), or None for any other marker."""
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return None
    data: dict[str, Any] = json.loads(marker.details["data"].payloads[0].data)
    return data


# -- the live stream ----------------------------------------------------------------------------

MessageId = tuple[int, int]
"""``(history event id, index)``: a history event may give more than one message."""


class HistoryMessage(NamedTuple):
    """One event of a run, read from its history."""

    id: MessageId
    name: str
    """A belugaflow event name: ``belugaflow.node.completed``..."""
    data: dict[str, Any]
    """JSON: ``event``, ``workflow_id``, ``time`` and what the event says (``node``,
    ``attempt``, ``error``, ``update``, ``signal``, ``value``, ``result``...)."""

    @property
    def sse_id(self) -> str:
        """The id as text: ``"12"``, or ``"12.1"`` for the second message of event 12."""
        event, index = self.id
        return str(event) if index == 0 else f"{event}.{index}"


def parse_message_id(text: str) -> MessageId:
    """The inverse of :attr:`HistoryMessage.sse_id`.

    Raises:
        ValueError: ``text`` is not such an id.
    """
    event, dot, index = text.strip().partition(".")
    if not event.isdigit() or (dot and not index.isdigit()):
        raise ValueError(f"not a message id: {text!r} (expected N or N.K, N and K digits)")
    return int(event), int(index) if dot else 0


async def watch(
    client: Client,
    workflow_id: str,
    *,
    after: MessageId = (0, 0),
    graphs: Mapping[str, Mapping[int, GraphSpec]] | None = None,
) -> AsyncIterator[HistoryMessage]:
    """The events of the latest run of ``workflow_id`` as they are written into its history,
    from the start (or after message ``after``) until the run ends.

    Long-polls the server (``wait_new_event``): a quiet run costs one open request.
    ``graphs`` (an orchestrator's ``registry.graphs``) tells node names of graphs run by name.

    Raises:
        temporalio.service.RPCError: no such workflow, or the server cannot be reached.
    """
    handle = client.get_workflow_handle(workflow_id)
    reader = _Stream(client, workflow_id, graphs or {})
    async for event in handle.fetch_history_events(wait_new_event=True):
        for index, (name, data) in enumerate(await reader.read(event)):
            if (event.event_id, index) <= after:
                continue
            yield HistoryMessage((event.event_id, index), name, data)
        if event.WhichOneof("attributes") in RUN_ENDS:
            return


_NAMES: dict[RunStatus, str] = {
    "completed": "belugaflow.run.completed",
    "failed": "belugaflow.run.failed",
    "cancelled": "belugaflow.run.cancelled",
    "terminated": "belugaflow.run.terminated",
    "timed_out": "belugaflow.run.timed_out",
    "continued_as_new": "belugaflow.run.continued_as_new",
}


class _Stream:
    """One run's history, event by event, into messages."""

    def __init__(
        self, client: Client, workflow_id: str, graphs: Mapping[str, Mapping[int, GraphSpec]]
    ) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.graphs = graphs
        self.names: Collection[str] = ()
        self.open: dict[int, str] = {}
        """Scheduled event id -> node."""
        self.attempt: dict[int, int] = {}

    def _message(self, name: str, event: HistoryEvent, **fields: Any) -> tuple[str, dict[str, Any]]:
        when = event_time(event).isoformat()
        data: dict[str, Any] = {"event": name, "workflow_id": self.workflow_id, "time": when}
        data.update({key: value for key, value in fields.items() if value is not UNREADABLE})
        return name, data

    async def read(self, event: HistoryEvent) -> list[tuple[str, dict[str, Any]]]:
        kind = event.WhichOneof("attributes")
        message = self._message
        if kind == "workflow_execution_started_event_attributes":
            return [message("belugaflow.run.started", event, type=await self._started(event))]
        if kind == "activity_task_scheduled_event_attributes":
            scheduled = event.activity_task_scheduled_event_attributes
            found = node_of(scheduled.activity_type.name, scheduled.activity_id, self.names)
            if found is None:
                return []
            self.open[event.event_id] = found[0]
            return [message("belugaflow.node.scheduled", event, node=found[0])]
        if kind == "activity_task_started_event_attributes":
            began = event.activity_task_started_event_attributes
            node = self.open.get(began.scheduled_event_id)
            if node is None:
                return []
            self.attempt[began.scheduled_event_id] = began.attempt
            started = message("belugaflow.node.started", event, node=node, attempt=began.attempt)
            if began.attempt <= 1:
                return [started]
            error = failure_text(began.last_failure) if began.HasField("last_failure") else None
            retried = message(
                "belugaflow.node.retry_scheduled",
                event,
                node=node,
                attempt=began.attempt - 1,
                error=error,
            )
            return [retried, started]
        if kind == "activity_task_completed_event_attributes":
            done = event.activity_task_completed_event_attributes
            return self._closed(
                event,
                done.scheduled_event_id,
                "belugaflow.node.completed",
                update=payload_value(done.result.payloads),
            )
        if kind == "activity_task_failed_event_attributes":
            failed = event.activity_task_failed_event_attributes
            return self._closed(
                event,
                failed.scheduled_event_id,
                "belugaflow.node.failed",
                error=failure_text(failed.failure),
            )
        if kind == "activity_task_timed_out_event_attributes":
            timed_out = event.activity_task_timed_out_event_attributes
            return self._closed(
                event,
                timed_out.scheduled_event_id,
                "belugaflow.node.failed",
                error=failure_text(timed_out.failure),
            )
        if kind == "activity_task_canceled_event_attributes":
            sid = event.activity_task_canceled_event_attributes.scheduled_event_id
            return self._closed(event, sid, "belugaflow.node.cancelled")
        if kind == "marker_recorded_event_attributes":
            return self._local(event)
        if kind == "workflow_execution_signaled_event_attributes":
            signaled = event.workflow_execution_signaled_event_attributes
            value = payload_value(signaled.input.payloads)
            return [
                message(
                    "belugaflow.signal.received", event, signal=signaled.signal_name, value=value
                )
            ]
        if kind == "workflow_execution_update_accepted_event_attributes":
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            value = payload_value(request.input.args.payloads)
            return [
                message(
                    "belugaflow.signal.received",
                    event,
                    signal=request.input.name,
                    value=value,
                    update=True,
                )
            ]
        if kind in RUN_ENDS:
            return [self._end(event, kind)]
        return []

    def _closed(
        self, event: HistoryEvent, sid: int, name: str, **fields: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        node = self.open.pop(sid, None)
        if node is None:
            return []
        attempt = self.attempt.pop(sid, None)
        return [self._message(name, event, node=node, attempt=attempt, **fields)]

    def _local(self, event: HistoryEvent) -> list[tuple[str, dict[str, Any]]]:
        data = local_activity(event)
        if data is None:
            return []
        found = node_of(data["activity_type"], data["activity_id"], self.names)
        if found is None:
            return []
        marker = event.marker_recorded_event_attributes
        node, attempt = found[0], data.get("attempt")
        if not marker.HasField("failure"):
            update = UNREADABLE
            if "result" in marker.details:
                update = payload_value(marker.details["result"].payloads)
            return [
                self._message(
                    "belugaflow.node.completed", event, node=node, attempt=attempt, update=update
                )
            ]
        error = failure_text(marker.failure)
        name = "belugaflow.node.failed"
        if data.get("backoff"):  # Temporal retries it after a timer
            name = "belugaflow.node.retry_scheduled"
        return [self._message(name, event, node=node, attempt=attempt, error=error)]

    def _end(self, event: HistoryEvent, kind: str) -> tuple[str, dict[str, Any]]:
        status = RUN_ENDS[kind]
        fields: dict[str, Any] = {"status": status}
        if status == "completed":
            done = event.workflow_execution_completed_event_attributes
            fields["result"] = payload_value(done.result.payloads)
        elif status == "failed":
            fields["error"] = failure_text(event.workflow_execution_failed_event_attributes.failure)
        elif status == "terminated":
            fields["reason"] = event.workflow_execution_terminated_event_attributes.reason
        return self._message(_NAMES[status], event, **fields)

    async def _started(self, event: HistoryEvent) -> str:
        """The run's type (a graph's name for a run that carries its spec), and the names of
        its graph's nodes when known."""
        started = event.workflow_execution_started_event_attributes
        workflow_type = started.workflow_type.name
        spec: GraphSpec | None = None
        if workflow_type == GRAPH_WORKFLOW:
            try:
                [arg] = await self.client.data_converter.decode(started.input.payloads)
                spec = GraphSpec.from_dict(arg["spec"])
            except Exception:  # an input this client cannot read: names unknown
                spec = None
        else:
            versions = self.graphs.get(workflow_type, {})
            memo = started.memo.fields
            version = payload_value([memo["version"]]) if "version" in memo else None
            spec = versions.get(version) if isinstance(version, int) else None
            if spec is None and versions:
                spec = versions[max(versions)]
        if spec is not None:
            self.names = {node.name for node in spec.nodes}
            return spec.name
        return workflow_type
