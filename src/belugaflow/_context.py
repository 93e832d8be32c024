"""Which graph, node and run the running code works for: one context variable, set by the
attempt loop (:mod:`._execute`) around every attempt of a node or chain step, on both engines.

Log records read it (:class:`~belugaflow.monitoring.LogContextFilter`), so a line logged by a
node, by a library the node calls, or by a thread the node started through
``asyncio.to_thread`` names the node it belongs to. Each asyncio task and each
``asyncio.to_thread`` call gets a copy of the context, so parallel nodes never see each other's
names.

The value is a plain tuple ``(graph, node, run_id)``: the cheapest thing to set per attempt.
``run_id`` is the run's event id (:attr:`~belugaflow.Event.run_id`: a fresh id in process, the
workflow id on Temporal) when the run has event listeners, and ``None`` otherwise: in process a
run without listeners makes no id, since that would cost every run a ``uuid4``. A node activity
on Temporal can always name its run: :class:`~belugaflow.monitoring.LogContextFilter` then
takes the workflow id from the activity's info.

Setting a context variable costs about 0.1 µs per attempt, measurable on the fastest graphs, so
it is only done once something reads it: :func:`enable` (called when a
:class:`~belugaflow.monitoring.LogContextFilter` is created, as
:func:`~belugaflow.monitoring.configure_logging` does) turns it on for the whole process, for
good. Until then the attempt loop pays one test of a global of its own per attempt (it keeps a
copy of :data:`tracking`, set through :func:`on_enable`: reading a global of another module
costs twice as much, measurably on W2's bare calls).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["NodeScope", "current", "enable", "node_scope", "on_enable", "tracking"]

NodeScope = tuple[str, str, str | None]
"""``(graph, node, run_id)``: the graph or chain, the node or step, the run id or None."""

node_scope: ContextVar[NodeScope | None] = ContextVar("belugaflow.node_scope", default=None)
"""The node running in this context, or None outside any node attempt."""

tracking = False
"""Whether the attempt loop sets :data:`node_scope`: off until :func:`enable` is called."""

_switches: list[Callable[[], None]] = []


def on_enable(switch: Callable[[], None]) -> None:
    """Call ``switch`` when :func:`enable` is first called (at once if it was)."""
    _switches.append(switch)
    if tracking:
        switch()


def enable() -> None:
    """Make the attempt loop name the running node in :data:`node_scope` from now on, in every
    thread (attempts already running are not named)."""
    global tracking
    if not tracking:
        tracking = True
        for switch in _switches:
            switch()


def current() -> NodeScope | None:
    """``(graph, node, run_id)`` of the node attempt running in this context, or None (also
    when :func:`enable` was never called)."""
    return node_scope.get()
