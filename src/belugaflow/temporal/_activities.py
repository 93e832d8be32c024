"""The activities that run graph nodes and routers on a worker.

A node activity makes one attempt through the same code as the local engine
(:func:`~belugaflow._execute.attempt_async`): the node's circuit breaker (this worker's, by
name), its timeout, and the same events to this worker's hooks. The verdict on a failed attempt
comes from the policy Temporal runs the activity with, and goes back to Temporal, which does the
retrying: the error keeps its type name and message, an error that may not be retried is
non-retryable, and the next retry waits exactly the delay the event announced (a ``retry_after``
hint, such as an open breaker's time to half-open, is a floor). Nodes that run as regular
activities heartbeat, so a dead worker's node is retried elsewhere after the heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ApplicationError

from .._errors import NodeFailedError
from .._events import Hook, RunEvents
from .._execute import Retry, StepCall, attempt_async
from .._runnable import CallKind, call_kind
from ..graph import Registry
from ..graph._reducers import SubgraphUpdate
from ..resilience import BreakerRegistry, RetryPolicy
from ._messages import NODE_ACTIVITY, ROUTE_ACTIVITY, SUBGRAPH_TAG

__all__ = ["GraphActivities", "to_application_error"]


def to_application_error(error: Exception) -> Exception:
    """The error as Temporal should see it: non-retryable and retry-after hints kept."""
    retry_after = getattr(error, "retry_after", None)
    if getattr(error, "retryable", True) is not False and retry_after is None:
        return error  # Temporal wraps it, keeping the type name for non_retryable_error_types
    delay = retry_after if isinstance(retry_after, timedelta) else None
    if isinstance(retry_after, int | float):
        delay = timedelta(seconds=retry_after)
    return ApplicationError(
        str(error),
        type=type(error).__name__,
        non_retryable=getattr(error, "retryable", True) is False,
        next_retry_delay=delay,
    )


@functools.lru_cache(maxsize=64)
def _policy(
    initial: timedelta,
    coefficient: float,
    maximum: timedelta | None,
    attempts: int,
    non_retryable: tuple[str, ...],
) -> RetryPolicy:
    # Without jitter, as Temporal computes its delays.
    return RetryPolicy.from_temporal(
        TemporalRetryPolicy(
            initial_interval=initial,
            backoff_coefficient=coefficient,
            maximum_interval=maximum,
            maximum_attempts=attempts,
            non_retryable_error_types=list(non_retryable),
        ),
        jitter=0.0,
    )


def _retry_policy(info: activity.Info) -> RetryPolicy:
    """The policy this activity runs under, as the server reports it."""
    p = info.retry_policy
    if p is None:  # an old server: let Temporal's own policy decide
        return RetryPolicy(max_attempts=0, jitter=0.0)
    return _policy(
        p.initial_interval,
        p.backoff_coefficient,
        p.maximum_interval,
        p.maximum_attempts,
        tuple(p.non_retryable_error_types or ()),
    )


def _failure(
    error: BaseException, attempt: int, *, retryable: bool, delay: float | None
) -> ApplicationError:
    """The failed attempt as Temporal should see it, its number in the details."""
    return ApplicationError(
        str(error) or type(error).__name__,
        {"attempt": attempt},
        type=type(error).__name__,
        non_retryable=not retryable,
        next_retry_delay=timedelta(seconds=delay) if delay else None,
    )


class _Heartbeats:
    """Heartbeat every ``interval`` seconds from the event loop until stopped. A blocking node
    runs in a thread and an async one awaits, so the loop is free to beat; a plain sync node
    that runs long holds the loop, and is taken for dead (see docs/temporal.md)."""

    __slots__ = ("_handle", "_interval", "_loop")

    def __init__(self, interval: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._handle = self._loop.call_later(interval, self._beat)

    def _beat(self) -> None:
        activity.heartbeat()
        self._handle = self._loop.call_later(self._interval, self._beat)

    def stop(self) -> None:
        self._handle.cancel()


class GraphActivities:
    """Node and router activities that resolve callables in an orchestrator's registry, guard
    nodes with its breakers and report to its hooks."""

    def __init__(
        self,
        registry: Registry,
        breakers: BreakerRegistry | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.registry = registry
        self.breakers = breakers or BreakerRegistry()
        self.hooks = tuple(hooks)
        self._kinds: dict[tuple[str, bool, bool], tuple[Any, CallKind]] = {}

    def _resolve(self, ref: str, what: str) -> Any:
        try:
            return self.registry.resolve(ref)
        except KeyError as error:
            raise ApplicationError(
                f"{what}: {error.args[0]}; is this worker running the same code as the client?",
                type="UnknownCallable",
                non_retryable=True,
            ) from None

    def _callable(self, call: Mapping[str, Any], where: str) -> tuple[Any, CallKind]:
        """The node's callable and how to call it, looked up once per worker (a key always
        means the same callable)."""
        timeout = call.get("timeout")
        key = (call["ref"], call["blocking"], timeout is not None)
        found = self._kinds.get(key)
        if found is None:
            fn = self._resolve(call["ref"], where)
            kind = call_kind(fn, blocking=call["blocking"], where=where)
            if kind is CallKind.INLINE and timeout is not None:
                kind = CallKind.THREAD  # as in process: only a thread can be abandoned
            found = self._kinds[key] = (fn, kind)
        return found

    def _step(self, call: Mapping[str, Any], info: activity.Info) -> StepCall:
        where = f"graph {call['graph']!r}: node {call['node']!r}"
        fn, kind = self._callable(call, where)
        timeout = call.get("timeout")
        breaker = None
        if "breaker" in call:
            breaker = self.breakers.get(call["breaker"])
            if breaker is None:
                raise ApplicationError(
                    f"{where}: no circuit breaker named {call['breaker']!r} in this worker;"
                    " is it running the same code as the client?",
                    type="UnknownBreaker",
                    non_retryable=True,
                )
        return StepCall(
            call["graph"], call["node"], fn, kind, _retry_policy(info), timeout, breaker
        )

    @activity.defn(name=NODE_ACTIVITY)
    async def run_node(self, call: Mapping[str, Any]) -> Any:
        """Run one attempt of a node (a :class:`~._messages.NodeCall`); return its update."""
        info = activity.info()
        step = self._step(call, info)
        events = RunEvents.open(self.hooks, step.graph, info.workflow_id, "temporal")
        beats = None
        if info.heartbeat_timeout and not info.is_local:
            beats = _Heartbeats(info.heartbeat_timeout.total_seconds() / 3)
        attempt = info.attempt
        try:
            update = await attempt_async(step, call["state"], events, attempt, time.monotonic())
        except Retry as retry:
            error = retry.__cause__ or retry
            # The user's traceback travels as the cause, for the web UI and the client.
            raise _failure(error, attempt, retryable=True, delay=retry.delay) from error
        except NodeFailedError as failed:
            error = failed.__cause__ or failed
            retryable = step.retry.is_retryable(error)  # else out of attempts: Temporal agrees
            raise _failure(error, attempt, retryable=retryable, delay=None) from error
        finally:
            if beats is not None:
                beats.stop()
        if isinstance(update, SubgraphUpdate):
            return {SUBGRAPH_TAG: [dict(update.before), dict(update.after)]}
        return update

    @activity.defn(name=ROUTE_ACTIVITY)
    async def run_router(self, call: Mapping[str, Any]) -> Any:
        """Call a router (a :class:`~._messages.RouteCall`); return the route key(s) it chose."""
        fn = self._resolve(call["ref"], f"graph {call['graph']!r}: router after {call['node']!r}")
        result = fn(call["state"])
        if inspect.isawaitable(result):
            result = await result
        return list(result) if isinstance(result, set | frozenset | tuple) else result

    @property
    def activities(self) -> list[Any]:
        """The activity callables to register on a worker."""
        return [self.run_node, self.run_router]
