"""How every node and chain step runs, on every engine: attempts, retries, timeout, breaker and
their events, in one place.

* :func:`attempt_sync` and :func:`attempt_async` make one attempt: through the step's circuit
  breaker, within its timeout, with ``node.started`` before and ``node.completed`` after. A
  failed attempt gets its verdict from the step's :class:`~belugaflow.resilience.RetryPolicy`:
  :class:`Retry` (``node.retry_scheduled`` emitted) or :class:`~belugaflow.NodeFailedError`
  (``node.failed`` emitted), the attempt's error chained.
* In process, :func:`run_step` (sync drivers), :func:`start_step` (the asyncio graph driver)
  and :func:`arun_step` (chains, LLM calls) make the first attempt — a bare call for a plain
  function when nobody listens — and loop over the verdicts, sleeping between attempts.
* On Temporal, each activity makes one attempt with the attempt number Temporal gives it and
  hands the verdict back to Temporal, which does the sleeping (``temporal/_activities.py``).
* Every attempt runs with :data:`~._context.node_scope` naming its graph, node and run, once
  something reads it (:func:`._context.enable`), so log records made during it name them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from . import _context
from ._context import NodeScope
from ._context import node_scope as _scope
from ._errors import CircuitOpenError, NodeFailedError
from ._events import EventKind, RunEvents
from ._runnable import CallKind
from .resilience import CircuitBreaker, RetryPolicy, backoff_disabled, timeout_after

__all__ = [
    "DeadlineExceeded",
    "Pending",
    "Retry",
    "StepCall",
    "arun_step",
    "attempt_async",
    "attempt_sync",
    "run_step",
    "start_step",
]

_STARTED, _COMPLETED = EventKind.NODE_STARTED, EventKind.NODE_COMPLETED

_tracking = False
""":data:`._context.tracking`, copied here: a global of this module is the cheapest test."""


def _start_tracking() -> None:
    global _tracking
    _tracking = True


_context.on_enable(_start_tracking)


@dataclass(frozen=True, slots=True)
class StepCall:
    """A step ready to be called: where it belongs, the callable, how to call it, its policies."""

    graph: str
    """The graph or chain, for errors and events."""
    name: str
    fn: Callable[[Any], Any]
    kind: CallKind
    retry: RetryPolicy
    timeout: float | None
    breaker: CircuitBreaker | None
    names_node: bool = True
    """Whether log records made during an attempt name this step as the running node (see
    :mod:`._context`); False for calls made on a node's behalf, such as LLM calls, whose
    records keep naming the node."""
    plain: bool = field(init=False)
    """A plain function without a breaker: its first attempt may be a bare call."""
    scope: NodeScope | None = field(init=False)
    """``(graph, name, None)``, or None when the step does not name the node: set as is
    when the run has no id, made once, not per attempt."""

    def __post_init__(self) -> None:
        # Fields, not properties: they are read once per node run on the hottest path.
        object.__setattr__(self, "plain", self.kind is CallKind.INLINE and self.breaker is None)
        object.__setattr__(
            self, "scope", (self.graph, self.name, None) if self.names_node else None
        )


class Retry(Exception):
    """The verdict on a failed attempt that may be retried: wait ``delay`` seconds first.

    Never escapes this package: the in-process loops sleep and try again, the durable engine
    hands the delay to Temporal. The attempt's error is the ``__cause__``.
    """

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


class DeadlineExceeded(Exception):
    """The run's deadline passed between two sync attempts (the engine adds the context)."""


def _verdict(
    step: StepCall,
    attempt: int,
    error: Exception,
    elapsed: float,
    duration: float,
    events: RunEvents | None,
) -> Retry | NodeFailedError:
    """What follows a failed attempt, by the retry policy; its event emitted."""
    delay = step.retry.next_delay(attempt, error, elapsed)
    if delay is None:
        failure = NodeFailedError(
            graph=step.graph,
            node=step.name,
            attempt=attempt,
            max_attempts=step.retry.max_attempts,
            cause=error,
        )
        if events is not None:
            events(EventKind.NODE_FAILED, step.name, attempt, error=failure, duration=duration)
        return failure
    if backoff_disabled():
        delay = 0.0
    if events is not None:
        events(
            EventKind.NODE_RETRY_SCHEDULED,
            step.name,
            attempt,
            error=error,
            delay=delay,
            duration=duration,
        )
    return Retry(delay)


def attempt_sync(
    step: StepCall, arg: Any, events: RunEvents | None, attempt: int, first_began: float
) -> Any:
    """Make one attempt of a sync-capable step (``first_began``: when the first attempt began,
    ``time.monotonic()``, for the policy's time budget).

    Raises:
        Retry: the attempt failed and may be retried.
        NodeFailedError: the attempt failed and no retry is left.
    """
    breaker = step.breaker
    token = None
    if _tracking and step.scope is not None:
        token = _scope.set(step.scope if events is None else (step.graph, step.name, events.run_id))
    try:
        began = 0.0  # timed only for the events' durations
        if events is not None:
            events(_STARTED, step.name, attempt)
            began = time.monotonic()
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
            ended = time.monotonic()
            verdict = _verdict(step, attempt, error, ended - first_began, ended - began, events)
            raise verdict from error
        if breaker is not None:
            breaker.on_success()
        if events is not None:
            events(_COMPLETED, step.name, attempt, update=result, duration=time.monotonic() - began)
        return result
    finally:
        if token is not None:
            _scope.reset(token)


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


async def attempt_async(
    step: StepCall, arg: Any, events: RunEvents | None, attempt: int, first_began: float
) -> Any:
    """Make one attempt of any step, within its timeout; as :func:`attempt_sync` otherwise.

    Raises:
        Retry: the attempt failed and may be retried.
        NodeFailedError: the attempt failed and no retry is left.
    """
    breaker = step.breaker
    token = None
    if _tracking and step.scope is not None:
        # Set in this task's context: a thread started by _call_once gets a copy of it.
        token = _scope.set(step.scope if events is None else (step.graph, step.name, events.run_id))
    try:
        began = 0.0  # timed only for the events' durations
        if events is not None:
            events(_STARTED, step.name, attempt)
            began = time.monotonic()
        try:
            if breaker is not None:
                breaker.before_call()
            if step.kind is CallKind.ASYNC and step.timeout is None:
                result = await step.fn(arg)  # the common case, one coroutine frame less
            else:
                result = await _call_once(step, arg, attempt)
        except Exception as error:
            if breaker is not None and not isinstance(error, CircuitOpenError):
                breaker.on_failure(error)
            ended = time.monotonic()
            verdict = _verdict(step, attempt, error, ended - first_began, ended - began, events)
            raise verdict from error
        except BaseException as error:  # cancelled: free a half-open probe, count nothing
            if breaker is not None:
                breaker.on_failure(error)
            raise
        if breaker is not None:
            breaker.on_success()
        if events is not None:
            events(_COMPLETED, step.name, attempt, update=result, duration=time.monotonic() - began)
        return result
    finally:
        if token is not None:
            _scope.reset(token)


def _second_attempt(step: StepCall, error: Exception) -> float:
    """After a failed bare first call: the delay before the second attempt.

    Raises:
        NodeFailedError: the policy allows no second attempt.
    """
    verdict = _verdict(step, 1, error, 0.0, 0.0, None)
    if isinstance(verdict, NodeFailedError):
        raise verdict from error
    return verdict.delay


def run_step(step: StepCall, arg: Any, events: RunEvents | None, deadline: float | None) -> Any:
    """Run a sync-capable step to its result, retrying by its policy, without an event loop.

    A plain function with nobody listening is first called bare (the common case costs one
    call; with the log context on, one context variable set around it); the attempt loop takes
    over after a failure. A running sync call cannot be interrupted, so the run's ``deadline``
    (``time.monotonic()``) is checked before each backoff sleep instead.

    Raises:
        NodeFailedError: the last attempt failed.
        DeadlineExceeded: the deadline would pass before the next attempt.
    """
    if step.plain and events is None and not _tracking:
        try:
            return step.fn(arg)
        except Exception as error:
            first_began = time.monotonic()  # the bare call is not timed: the budget starts now
            failed: BaseException | None = error
            attempt, delay = 2, _second_attempt(step, error)
    elif step.plain and events is None and step.scope is not None:
        token = _scope.set(step.scope)  # the same, naming the node in the log context
        try:
            return step.fn(arg)
        except Exception as error:
            first_began = time.monotonic()
            failed = error
            attempt, delay = 2, _second_attempt(step, error)
        finally:
            _scope.reset(token)
    else:
        first_began = time.monotonic()
        try:
            return attempt_sync(step, arg, events, 1, first_began)
        except Retry as retry:
            failed, attempt, delay = retry.__cause__, 2, retry.delay
    while True:
        if deadline is not None and time.monotonic() + delay >= deadline:
            raise DeadlineExceeded from failed
        if delay:
            time.sleep(delay)
        try:
            return attempt_sync(step, arg, events, attempt, first_began)
        except Retry as retry:
            failed, attempt, delay = retry.__cause__, attempt + 1, retry.delay


class Pending:
    """A step that :func:`start_step` could not finish at once: await or schedule ``rest``."""

    __slots__ = ("rest",)

    def __init__(self, rest: Coroutine[Any, Any, Any]) -> None:
        self.rest = rest


def start_step(step: StepCall, arg: Any, events: RunEvents | None) -> Any:
    """Start a step on an asyncio driver: a plain sync function's first attempt runs now, on
    the scheduler, and its result comes back; anything else (and a retry) comes back as a
    :class:`Pending` whose ``rest`` finishes the step.

    Raises:
        NodeFailedError: a plain function's first attempt failed and may not be retried.
    """
    first_began = time.monotonic()
    if step.kind is not CallKind.INLINE:
        return Pending(_attempts(step, arg, events, 1, 0.0, first_began))
    try:
        return attempt_sync(step, arg, events, 1, first_began)
    except Retry as retry:  # sleeps need the loop: continue in a coroutine
        return Pending(_attempts(step, arg, events, 2, retry.delay, first_began))


async def arun_step(step: StepCall, arg: Any, events: RunEvents | None) -> Any:
    """Run any step to its result on the running loop, retrying by its policy.

    Raises:
        NodeFailedError: the last attempt failed.
    """
    started = start_step(step, arg, events)
    return await started.rest if type(started) is Pending else started


async def _attempts(
    step: StepCall,
    arg: Any,
    events: RunEvents | None,
    attempt: int,
    delay: float,
    first_began: float,
) -> Any:
    """Attempts from number ``attempt`` on, ``delay`` seconds after the one before failed."""
    while True:
        if delay:
            await asyncio.sleep(delay)
        try:
            return await attempt_async(step, arg, events, attempt, first_began)
        except Retry as retry:
            attempt, delay = attempt + 1, retry.delay
