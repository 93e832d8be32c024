"""Run events: what ``stream``/``astream`` yield and what observability hooks receive.

One frozen object per event, so new fields never break existing hooks. Event names are stable
(``belugaflow.node.completed`` ...) and safe to use as metric or log keys. Both engines emit the
same events: in process from the drivers and the attempt loop; on Temporal from the activity
that runs each node (in the worker that runs it) and from ``GraphWorkflow`` (run start, skips,
run end; only while not replaying), each to the hooks of the orchestrator in that process.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

__all__ = ["Event", "EventKind", "Hook", "RunEvents", "new_run_id", "stream_events"]


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
    NODE_WAITING = "belugaflow.node.waiting"
    """A wait node began to wait for its signal."""
    NODE_PARKED = "belugaflow.node.parked"
    """A node failed for good and its policy parks the run for an operator."""
    SIGNAL_DROPPED = "belugaflow.signal.dropped"
    """A signal was refused (unknown name, value not matching its schema); ``error`` says why."""
    RUN_CANCELLED = "belugaflow.run.cancelled"
    """The run was cancelled, after its compensation ran."""


class Event(NamedTuple):
    """One thing that happened during a run of a graph or chain.

    Immutable. A named tuple rather than a frozen dataclass because runs emit one per node
    start and end, and a tuple is built three times faster (a run with listeners pays it).
    """

    kind: EventKind
    """What happened."""
    graph: str
    """Name of the graph or chain."""
    run_id: str
    """The run it belongs to: the workflow id on Temporal, a fresh id per run in process."""
    node: str | None = None
    """The node or step, for node events."""
    attempt: int = 0
    """1-based attempt number, for node started / completed / failed / retry events; 0 when a
    wait node completes (its signal arrived or its timeout passed)."""
    update: Mapping[str, Any] | Any = None
    """The node's state update (graphs) or output (chains), on completion; the input, on a
    chain's start."""
    state: Mapping[str, Any] | None = None
    """The input state, on a graph run's start; the final state, on completion; the partial
    state on run failure."""
    error: BaseException | None = None
    """The error, on failure and retry events."""
    delay: float | None = None
    """Seconds until the next attempt, on retry events."""
    duration: float | None = None
    """Seconds the attempt took (node completed, failed and retry events) or the run took (run
    completed and failed events)."""
    time: float = 0.0
    """When it happened, in seconds since the epoch (set by the run that emits it)."""
    engine: str = "local"
    """Which engine runs it: ``"local"`` (in process) or ``"temporal"``."""

    @property
    def name(self) -> str:
        """The stable event name, e.g. ``belugaflow.node.completed``."""
        return self.kind.value


class Hook(Protocol):
    """Receives every event of every run it is attached to. Must not block or raise."""

    def __call__(self, event: Event, /) -> None: ...


logger = logging.getLogger("belugaflow")
_now = time.time


def new_run_id() -> str:
    """A fresh id for an in-process run: 32 random hex digits, like ``uuid4().hex`` but a
    quarter of its cost (every run with a listener takes one)."""
    return os.urandom(16).hex()


class RunEvents:
    """The events of one run: stamps each with the graph and run id and hands it to every
    listener. Drivers hold ``None`` instead when nobody listens, so a run without listeners
    pays one ``is None`` check per event it would have emitted."""

    __slots__ = ("engine", "graph", "run_id", "targets")

    def __init__(
        self, targets: Sequence[Hook], graph: str, run_id: str, engine: str = "local"
    ) -> None:
        self.targets = targets
        self.graph = graph
        self.run_id = run_id
        self.engine = engine

    @classmethod
    def open(
        cls,
        targets: Sequence[Hook],
        graph: str,
        run_id: str | None = None,
        engine: str = "local",
    ) -> RunEvents | None:
        """The events of a new run of ``graph``; None when ``targets`` is empty."""
        if not targets:
            return None
        return cls(targets, graph, run_id or new_run_id(), engine)

    def __call__(
        self, kind: EventKind, node: str | None = None, attempt: int = 0, **fields: Any
    ) -> None:
        """Emit one event; ``fields`` are the other :class:`Event` fields."""
        event = Event(
            kind, self.graph, self.run_id, node, attempt, time=_now(), engine=self.engine, **fields
        )
        for target in self.targets:
            try:
                target(event)
            except Exception:  # an observer must never break the run it observes
                logger.exception("event hook %r failed on %s", target, event.name)


async def stream_events(
    hooks: Sequence[Hook], run: Callable[[Sequence[Hook]], Awaitable[object]]
) -> AsyncGenerator[Event, None]:
    """Start ``run(listeners)`` — ``hooks`` plus this stream — and yield its events as they
    happen; then re-raise its error."""
    events: asyncio.Queue[Event | None] = asyncio.Queue()
    listen: Hook = events.put_nowait

    async def runner() -> None:
        try:
            await run([*hooks, listen])
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
