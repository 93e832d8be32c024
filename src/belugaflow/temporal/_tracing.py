"""Traces across processes: Temporal's tracing interceptor on an orchestrator's client and
workers, and the closing of node spans whose activity ended without an event.

``temporalio.contrib.opentelemetry.TracingInterceptor`` carries the trace context in the
headers of every start, signal, query and activity, through the server to the worker, and
makes the ``StartWorkflow``, ``RunWorkflow``, ``StartActivity`` and ``RunActivity`` spans; the
node spans (:class:`~belugaflow.monitoring.Tracing`) open inside ``RunActivity``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from ._messages import NODE_ACTIVITY

if TYPE_CHECKING:
    from temporalio.client import Client

    from ..monitoring import Tracing

__all__ = ["client_interceptors", "worker_interceptors"]


def _interceptor(tracing: Tracing) -> TracingInterceptor:
    # The orchestrator's provider, which need not be the global one.
    return TracingInterceptor(tracing.provider.get_tracer("temporalio.contrib.opentelemetry"))


def client_interceptors(tracing: Tracing) -> list[Any]:
    """The interceptors of an orchestrator's client; workers built on it inherit them."""
    return [_interceptor(tracing)]


def worker_interceptors(tracing: Tracing, client: Client) -> list[Interceptor]:
    """The interceptors a worker on ``client`` adds: Temporal's tracing interceptor unless the
    client has one (a client the application connected itself), and the closing of node spans
    left open."""
    found: list[Interceptor] = [_CloseNodeSpans(tracing)]
    if not any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"]):
        found.insert(0, _interceptor(tracing))
    return found


class _CloseNodeSpans(Interceptor):
    """An activity cancelled mid-attempt (the run was cancelled, the worker shuts down, a
    heartbeat timed out) emits no event for its node (a graph's node, or a hand-written
    workflow's activity): the node's span is closed here, as cancelled."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CloseNodeSpansInbound(next, self.tracing)


class _CloseNodeSpansInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, tracing: Tracing) -> None:
        super().__init__(next)
        self.tracing = tracing

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except BaseException:
            info = activity.info()
            node: object = info.activity_type
            if node == NODE_ACTIVITY:
                call = input.args[0] if input.args else None
                node = call.get("node") if isinstance(call, dict) else None
            if isinstance(node, str):  # a route activity has no span: a miss, at no cost
                self.tracing.end_attempt(info.workflow_id or "", node, info.attempt)
            raise
