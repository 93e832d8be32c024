"""Events for hand-written workflows and their activities, so hooks (metrics, traces, logs) see
them as they see graph runs: the workflow type is the run's name, each activity type a node.

Graph workflows and node activities emit their own events; this covers everything else a
belugaflow worker serves. Workflow events are emitted only while not replaying; a workflow
"fails" only by a Temporal failure error (any other exception fails a workflow *task*, which
the server retries, so it is not the run's end).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from .._events import EventKind, Hook, RunEvents
from ._messages import NODE_ACTIVITY, ROUTE_ACTIVITY

__all__ = ["ObservedActivities", "observe_workflow"]

_OURS = frozenset({NODE_ACTIVITY, ROUTE_ACTIVITY})  # these emit their own events
_RETRIED, _FAILED = EventKind.NODE_RETRY_SCHEDULED, EventKind.NODE_FAILED


async def observe_workflow(hooks: Sequence[Hook], run: Callable[[], Awaitable[Any]]) -> Any:
    """Run a hand-written workflow (``run``), emitting its run events to ``hooks``."""
    info = workflow.info()
    replaying = workflow.unsafe.is_replaying

    def emit(kind: EventKind, **fields: Any) -> None:
        if not replaying():
            elapsed = (workflow.now() - info.start_time).total_seconds()
            RunEvents(hooks, info.workflow_type, info.workflow_id, "temporal")(
                kind, duration=None if kind is EventKind.RUN_STARTED else elapsed, **fields
            )

    emit(EventKind.RUN_STARTED)
    try:
        result = await run()
    except asyncio.CancelledError:
        emit(EventKind.RUN_CANCELLED)
        raise
    except FailureError as error:
        emit(EventKind.RUN_FAILED, error=error)
        raise
    emit(EventKind.RUN_COMPLETED)
    return result


class ObservedActivities(ActivityInboundInterceptor):
    """Emits node events for each attempt of an activity that is not a graph node's."""

    def __init__(self, next: ActivityInboundInterceptor, hooks: Sequence[Hook]) -> None:
        super().__init__(next)
        self.hooks = hooks

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type in _OURS:
            return await super().execute_activity(input)
        events = RunEvents(self.hooks, info.workflow_type or "", info.workflow_id or "", "temporal")
        name, attempt = info.activity_type, info.attempt
        events(EventKind.NODE_STARTED, name, attempt)
        began = time.monotonic()
        try:
            result = await super().execute_activity(input)
        except Exception as error:
            kind = (
                EventKind.NODE_RETRY_SCHEDULED if _retried(error, info) else EventKind.NODE_FAILED
            )
            events(kind, name, attempt, error=error, duration=time.monotonic() - began)
            raise
        events(EventKind.NODE_COMPLETED, name, attempt, duration=time.monotonic() - began)
        return result


def _retried(error: Exception, info: activity.Info) -> bool:
    """Whether Temporal will run the activity again after ``error``, by its retry policy."""
    if isinstance(error, asyncio.CancelledError):
        return False
    if isinstance(error, ApplicationError) and error.non_retryable:
        return False
    policy = info.retry_policy
    if policy is None:
        return True
    kind = (
        error.type if isinstance(error, ApplicationError) and error.type else type(error).__name__
    )
    if kind in (policy.non_retryable_error_types or ()):
        return False
    return policy.maximum_attempts == 0 or info.attempt < policy.maximum_attempts
