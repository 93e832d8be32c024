"""Run errors across Temporal: the workflow fails with the error's type, message and fields, and
the client raises the same :class:`~belugaflow.RunError` subclass as the local engine would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutError

from .._errors import (
    MaxStepsExceededError,
    NodeFailedError,
    RouteError,
    RunCancelledError,
    RunError,
    RunTimeoutError,
    StateConflictError,
    WaitTimeoutError,
)
from ..resilience import RetryPolicy

__all__ = ["NODE_FAILURES", "node_failure", "restore_run_error", "run_failure"]

# The run errors that travel, with the attributes each carries beyond graph, node and state.
_FIELDS: dict[type[RunError], tuple[str, ...]] = {
    RunError: (),
    NodeFailedError: ("attempt", "max_attempts", "retryable"),
    RouteError: (),
    StateConflictError: ("key", "nodes"),
    MaxStepsExceededError: (),
    RunTimeoutError: ("timeout", "running"),
    WaitTimeoutError: (),
    RunCancelledError: (),
}
_BY_NAME = {cls.__name__: cls for cls in _FIELDS}


NODE_FAILURES = (ActivityError, ApplicationError, TimeoutError)
"""What awaiting a node's activity raises when it failed for good: an ``ActivityError`` around
the node's error, or (a local activity) the error itself, or a local activity's timeout."""


def node_failure(graph: str, node: str, retry: RetryPolicy, error: FailureError) -> NodeFailedError:
    """The :class:`NodeFailedError` for a node activity that failed for good.

    The activity reports its attempt number with its error; an attempt the server timed out
    (worker gone, start-to-close passed) reports nothing, and is counted as the last one.
    """
    cause: BaseException = (error.cause if isinstance(error, ActivityError) else None) or error
    attempt = retry.max_attempts or 1
    if isinstance(cause, ApplicationError) and cause.details:
        reported = cause.details[0]
        if isinstance(reported, Mapping) and isinstance(reported.get("attempt"), int):
            attempt = reported["attempt"]
    return NodeFailedError(
        graph=graph,
        node=node,
        attempt=attempt,
        max_attempts=retry.max_attempts,
        cause=cause,
        detail=f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else None,
    )


def run_failure(error: RunError) -> ApplicationError:
    """What the workflow fails with: non-retryable (never a workflow-task retry), the error's
    type, message and fields, and the partial state."""
    fields = {name: getattr(error, name) for name in _FIELDS.get(type(error), ())}
    details: dict[str, Any] = {
        "graph": error.graph,
        "node": error.node,
        "state": error.state,
        "fields": fields,
    }
    return ApplicationError(error.message, details, type=type(error).__name__, non_retryable=True)


def restore_run_error(failure: ApplicationError) -> RunError | None:
    """The run error that :func:`run_failure` sent, rebuilt; None for any other failure."""
    cls = _BY_NAME.get(failure.type or "")
    details = failure.details[0] if failure.details else None
    if cls is None or not isinstance(details, Mapping):
        return None
    error = cls.__new__(cls)  # its own __init__ would compose the message again
    RunError.__init__(
        error,
        failure.message,
        graph=details.get("graph") or "",
        node=details.get("node"),
        state=details.get("state") or {},
    )
    for name, value in (details.get("fields") or {}).items():
        if name in _FIELDS[cls]:
            setattr(error, name, tuple(value) if isinstance(value, list) else value)
    return error
