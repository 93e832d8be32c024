"""One attempt loop for every step of every engine: retry, timeout, circuit breaker.

Chains and graphs call :func:`call_sync` (no event loop) or :func:`call_async`. Both apply the
step's :class:`~belugaflow.resilience.RetryPolicy` the same way and raise
:class:`~belugaflow.NodeFailedError` with the last error chained once no retry is left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import CircuitOpenError, NodeFailedError
from ._events import Emit, Event, EventKind
from ._runnable import CallKind
from .resilience import CircuitBreaker, RetryPolicy, backoff_disabled, timeout_after

__all__ = [
    "DeadlineExceeded",
    "StepCall",
    "attempt_async",
    "attempt_sync",
    "call_async",
    "call_sync",
]


@dataclass(frozen=True, slots=True)
class StepCall:
    """A step ready to be called: the callable, how to call it and its policies."""

    name: str
    fn: Callable[[Any], Any]
    kind: CallKind
    retry: RetryPolicy
    timeout: float | None
    breaker: CircuitBreaker | None

    @property
    def plain(self) -> bool:
        """A plain function without a breaker: its first attempt may be a bare call."""
        return self.kind is CallKind.INLINE and self.breaker is None


def _retry_or_raise(
    step: StepCall, graph: str, attempt: int, error: Exception, started: float, emit: Emit | None
) -> float:
    """Return the delay before the next attempt, or raise NodeFailedError."""
    delay = step.retry.next_delay(attempt, error, time.monotonic() - started)
    if delay is None:
        failure = NodeFailedError(
            graph=graph,
            node=step.name,
            attempt=attempt,
            max_attempts=step.retry.max_attempts,
            cause=error,
        )
        if emit is not None:
            emit(Event(EventKind.NODE_FAILED, graph, step.name, attempt, error=failure))
        raise failure from error
    if backoff_disabled():
        delay = 0.0
    if emit is not None:
        emit(
            Event(
                EventKind.NODE_RETRY_SCHEDULED, graph, step.name, attempt, error=error, delay=delay
            )
        )
    return delay


class DeadlineExceeded(Exception):
    """The run's deadline passed between two sync attempts (the engine adds the context)."""


def attempt_sync(step: StepCall, arg: Any, graph: str, emit: Emit | None, attempt: int) -> Any:
    """Make one attempt of a sync-capable step; its error propagates untouched."""
    breaker = step.breaker
    if emit is not None:
        emit(Event(EventKind.NODE_STARTED, graph, step.name, attempt))
    try:
        if breaker is not None:
            breaker.before_call()
        if step.kind is CallKind.INLINE:
            result = step.fn(arg)
        else:  # a sync-capable Runnable
            result = step.fn.invoke(arg)  # type: ignore[attr-defined]
    except Exception as error:
        if breaker is not None and not isinstance(error, CircuitOpenError):
            breaker.on_failure(error)
        raise
    if breaker is not None:
        breaker.on_success()
    if emit is not None:
        emit(Event(EventKind.NODE_COMPLETED, graph, step.name, attempt, update=result))
    return result


def call_sync(
    step: StepCall,
    arg: Any,
    graph: str,
    emit: Emit | None,
    deadline: float | None,
    failed: Exception | None = None,
) -> Any:
    """Call a sync-capable step with its policies, without an event loop.

    A plain sync call cannot be interrupted, so the run's ``deadline`` (monotonic seconds) is
    checked before each backoff sleep instead. ``failed`` continues after a first attempt that
    the caller made itself and saw fail.
    """
    started = time.monotonic()
    attempt = 0 if failed is None else 1
    error = failed
    while True:
        if error is not None:
            delay = _retry_or_raise(step, graph, attempt, error, started, emit)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise DeadlineExceeded from error
            if delay:
                time.sleep(delay)
        attempt += 1
        try:
            return attempt_sync(step, arg, graph, emit, attempt)
        except Exception as exc:
            error = exc


async def _call_once(step: StepCall, arg: Any, attempt: int) -> Any:
    kind = step.kind
    if kind is CallKind.INLINE:
        return step.fn(arg)
    if kind is CallKind.ASYNC:
        awaitable = step.fn(arg)
    elif kind is CallKind.THREAD:
        awaitable = asyncio.to_thread(step.fn, arg)
    else:
        awaitable = step.fn.ainvoke(arg)  # type: ignore[attr-defined]
    if step.timeout is None:
        return await awaitable
    async with timeout_after(step.timeout, what=f"node {step.name!r} attempt {attempt}"):
        return await awaitable


async def attempt_async(step: StepCall, arg: Any, attempt: int) -> Any:
    """Make one attempt of any step, through its breaker; its error propagates untouched.

    The durable engine calls this once per activity attempt: Temporal does the retrying.
    """
    breaker = step.breaker
    try:
        if breaker is not None:
            breaker.before_call()
        result = await _call_once(step, arg, attempt)
    except Exception as error:
        if breaker is not None and not isinstance(error, CircuitOpenError):
            breaker.on_failure(error)
        raise
    except BaseException as error:  # cancelled: free a half-open probe, count nothing
        if breaker is not None:
            breaker.on_failure(error)
        raise
    if breaker is not None:
        breaker.on_success()
    return result


async def call_async(
    step: StepCall, arg: Any, graph: str, emit: Emit | None, failed: Exception | None = None
) -> Any:
    """Call any step with its policies; timeouts cancel the attempt.

    ``failed`` continues after a first attempt that the caller made inline and saw fail.
    """
    fast = step.kind is CallKind.ASYNC and step.timeout is None and step.breaker is None
    started = time.monotonic()
    attempt = 0 if failed is None else 1
    error = failed
    while True:
        if error is not None:
            delay = _retry_or_raise(step, graph, attempt, error, started, emit)
            if delay:
                await asyncio.sleep(delay)
            error = None
        attempt += 1
        if emit is not None:
            emit(Event(EventKind.NODE_STARTED, graph, step.name, attempt))
        try:
            if fast:  # skip two coroutine frames in the common case
                result = await step.fn(arg)
            else:
                result = await attempt_async(step, arg, attempt)
        except Exception as exc:
            error = exc
            continue
        if emit is not None:
            emit(Event(EventKind.NODE_COMPLETED, graph, step.name, attempt, update=result))
        return result
