"""Run events: what ``stream``/``astream`` yield and what observability hooks receive.

One frozen object per event, so new fields never break existing hooks. Event names are stable
(``belugaflow.node.completed`` ...) and safe to use as metric or log keys.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Emit", "Event", "EventKind", "Hook", "make_emitter", "stream_events"]


class EventKind(enum.Enum):
    """What happened. The value is the stable event name."""

    RUN_STARTED = "belugaflow.run.started"
    RUN_COMPLETED = "belugaflow.run.completed"
    RUN_FAILED = "belugaflow.run.failed"
    NODE_STARTED = "belugaflow.node.started"
    NODE_COMPLETED = "belugaflow.node.completed"
    NODE_RETRY_SCHEDULED = "belugaflow.node.retry_scheduled"
    NODE_FAILED = "belugaflow.node.failed"
    NODE_SKIPPED = "belugaflow.node.skipped"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened during a run of a graph or chain."""

    kind: EventKind
    """What happened."""
    graph: str
    """Name of the graph or chain."""
    node: str | None = None
    """The node or step, for node events."""
    attempt: int = 0
    """1-based attempt number, for node started / completed / failed / retry events."""
    update: Mapping[str, Any] | Any = None
    """The node's state update (graphs) or output (chains), on completion."""
    state: Mapping[str, Any] | None = None
    """The final state, on run completion; the partial state on run failure."""
    error: BaseException | None = field(default=None, compare=False)
    """The error, on failure and retry events."""
    delay: float | None = None
    """Seconds until the next attempt, on retry events."""

    @property
    def name(self) -> str:
        """The stable event name, e.g. ``belugaflow.node.completed``."""
        return self.kind.value


class Hook(Protocol):
    """Receives every event of every run it is attached to. Must not block or raise."""

    def __call__(self, event: Event) -> None: ...


Emit = Callable[[Event], None]


logger = logging.getLogger("belugaflow")


def make_emitter(hooks: Sequence[Hook], extra: Emit | None = None) -> Emit | None:
    """One callable that feeds every hook (and ``extra``); None when nobody listens."""
    targets = [*hooks, *([extra] if extra is not None else [])]
    if not targets:
        return None

    def emit(event: Event) -> None:
        for target in targets:
            try:
                target(event)
            except Exception:  # an observer must never break the run it observes
                logger.exception("event hook %r failed on %s", target, event.name)

    return emit


async def stream_events(
    hooks: Sequence[Hook], run: Callable[[Emit | None], Awaitable[object]]
) -> AsyncGenerator[Event, None]:
    """Start ``run(emit)`` and yield its events as they happen; then re-raise its error."""
    events: asyncio.Queue[Event | None] = asyncio.Queue()
    emit = make_emitter(hooks, events.put_nowait)

    async def runner() -> None:
        try:
            await run(emit)
        finally:
            events.put_nowait(None)

    task = asyncio.create_task(runner())
    try:
        while (event := await events.get()) is not None:
            yield event
        await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
