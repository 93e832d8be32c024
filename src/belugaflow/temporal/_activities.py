"""The activities that run graph nodes and routers on a worker.

Each activity makes one attempt; Temporal retries it with the node's policy, converted 1:1 by
``RetryPolicy.to_temporal``. Errors keep their meaning: one marked non-retryable becomes a
non-retryable ``ApplicationError``, and a ``retry_after`` hint becomes Temporal's next retry
delay.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._execute import StepCall, attempt_async
from .._runnable import call_kind
from ..graph import Registry
from ..graph._reducers import SubgraphUpdate
from ..resilience import BreakerRegistry, RetryPolicy
from ._messages import NODE_ACTIVITY, ROUTE_ACTIVITY, SUBGRAPH_TAG

__all__ = ["GraphActivities"]

_ONE_ATTEMPT = RetryPolicy(max_attempts=1)


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


class GraphActivities:
    """Node and router activities that resolve callables in an orchestrator's registry."""

    def __init__(self, registry: Registry, breakers: BreakerRegistry | None = None) -> None:
        self.registry = registry
        self.breakers = breakers or BreakerRegistry()

    def _resolve(self, ref: str, what: str) -> Any:
        try:
            return self.registry.resolve(ref)
        except KeyError as error:
            raise ApplicationError(
                f"{what}: {error.args[0]}; is this worker running the same code as the client?",
                type="UnknownCallable",
                non_retryable=True,
            ) from None

    @activity.defn(name=NODE_ACTIVITY)
    async def run_node(self, call: Mapping[str, Any]) -> Any:
        """Run one attempt of a node (a :class:`~._messages.NodeCall`); return its update."""
        where = f"graph {call['graph']!r}: node {call['node']!r}"
        fn = self._resolve(call["ref"], where)
        kind = call_kind(fn, blocking=call["blocking"], where=where)
        step = StepCall(call["node"], fn, kind, _ONE_ATTEMPT, None, None)
        try:
            update = await attempt_async(step, call["state"], activity.info().attempt)
        except Exception as error:
            converted = to_application_error(error)
            if converted is error:
                raise
            raise converted from error
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
