"""``RunBoard``: what the outside world sees of a graph run, and what it sends to it.

Both engines keep one per run that can wait: a signal waits in the board's inbox until its wait
node takes it, an operator's decision on a parked node waits until that node's task takes it,
and the ``progress`` query reads the board. It has no clock and does no I/O, so the durable
workflow holds one too and stays deterministic. How a driver *waits* for the board to change
is the driver's own (:data:`Until`): asyncio in process, ``workflow.wait_condition`` on
Temporal.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .._errors import NodeFailedError
from .._events import EventKind, RunEvents
from .._schema import problems
from ._scheduler import TIMED_OUT
from ._spec import GraphSpec, NodeSpec

__all__ = [
    "ACTIONS",
    "RESOLVE",
    "Resolution",
    "RunBoard",
    "Until",
    "park_or_fail",
    "signal_problems",
    "wait",
]

Until = Callable[[Callable[[], bool], float | None], Awaitable[bool]]
"""``await until(predicate, timeout)``: True once ``predicate()`` holds, False if ``timeout``
seconds (None: no limit) passed first."""

ACTIONS = ("retry", "skip", "abort")
"""What an operator can do with a parked node."""

RESOLVE = "resolve"
"""The signal (and update) that carries an operator's decision on a parked node."""

SUMMARY_CHARS = 200
"""A state value longer than this (as JSON) shows in ``progress`` as its type and size."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """An operator's decision on a parked node."""

    action: Literal["retry", "skip", "abort"]
    update: dict[str, Any] | None = None
    """For ``skip``: the state update that stands in for the node's."""


class RunBoard:
    """The inbox and the visible progress of one graph run."""

    __slots__ = (
        "completed",
        "dropped",
        "events",
        "inbox",
        "on_change",
        "parked",
        "resolutions",
        "running",
        "spec",
        "status",
        "waiting",
    )

    def __init__(self, spec: GraphSpec, events: RunEvents | None = None) -> None:
        self.spec = spec
        self.events = events
        self.inbox: dict[str, deque[Any]] = {}
        self.running: list[str] = []
        self.completed: list[str] = []
        self.waiting: dict[str, dict[str, Any]] = {}
        self.parked: dict[str, dict[str, Any]] = {}
        self.resolutions: dict[str, Resolution] = {}
        self.dropped: list[str] = []
        self.status = "running"
        """``running`` until the run ends: ``completed``, ``failed`` or ``cancelled``."""
        self.on_change: Callable[[], None] | None = None
        """Called when a signal or decision arrives (the local driver wakes its waiters)."""

    # -- what comes in ------------------------------------------------------------------------

    def signal_problems(self, name: str, value: Any) -> list[str]:
        """Why the run would refuse ``value`` sent as signal ``name``; empty if it takes it."""
        if name == RESOLVE:
            return self.resolve_problems(value)
        return signal_problems(self.spec, name, value)

    def signal(self, name: str, value: Any) -> list[str]:
        """Take signal ``name``, or drop and record it; returns why it was dropped."""
        found = self.signal_problems(name, value)
        if found:
            self.dropped.extend(f"signal {name!r}: {p}" for p in found)
            if self.events is not None:
                self.events(EventKind.SIGNAL_DROPPED, error=ValueError("; ".join(found)))
            return found
        if name == RESOLVE:
            node, resolution = self._resolution(value)
            self.resolutions[node] = resolution
        else:
            self.inbox.setdefault(name, deque()).append(value)
        if self.on_change is not None:
            self.on_change()
        return []

    def resolve_problems(self, value: Any) -> list[str]:
        """Why an operator's ``resolve`` would be refused: the shape is
        ``{"node": <parked node>, "action": "retry" | "skip" | "abort", "update": {...}}``
        (``node`` may be left out while one node is parked; ``update`` only for ``skip``)."""
        if not isinstance(value, Mapping):
            return [f"expected an object with 'action' (and 'node'), got {value!r}"]
        found = [f"{key}: unknown field" for key in value if key not in _RESOLVE_KEYS]
        if value.get("action") not in ACTIONS:
            found.append(f"action: must be one of {', '.join(ACTIONS)}")
        node = value.get("node")
        parked = ", ".join(map(repr, self.parked)) or "none"
        if node is None and len(self.parked) != 1:
            found.append(f"node: name the parked node (parked: {parked})")
        elif node is not None and node not in self.parked:
            found.append(f"node: {node!r} is not parked (parked: {parked})")
        update = value.get("update")
        if update is not None and not isinstance(update, Mapping):
            found.append("update: must be an object of state updates")
        return found

    def _resolution(self, value: Mapping[str, Any]) -> tuple[str, Resolution]:
        node = value.get("node") or next(iter(self.parked))
        update = value.get("update")
        return node, Resolution(value["action"], dict(update) if update is not None else None)

    # -- what goes out ------------------------------------------------------------------------

    def progress(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """What the ``progress`` query answers: status, nodes running, waiting and parked,
        completed nodes, dropped signals and a summary of the state."""
        status = self.status
        if status == "running" and self.parked:
            status = "parked"
        elif status == "running" and self.waiting and len(self.running) == len(self.waiting):
            status = "waiting"
        return {
            "graph": self.spec.name,
            "version": self.spec.version,
            "status": status,
            "running": [n for n in self.running if n not in self.waiting and n not in self.parked],
            "waiting": list(self.waiting.values()),
            "parked": list(self.parked.values()),
            "completed": list(self.completed),
            "dropped_signals": list(self.dropped),
            "state": {key: _summary(value) for key, value in state.items()},
        }


_RESOLVE_KEYS = frozenset({"node", "action", "update"})


def signal_problems(spec: GraphSpec, name: str, value: Any) -> list[str]:
    """Why any run of ``spec`` refuses ``value`` as signal ``name`` (an unknown name, a value
    that breaks the wait's schema); what depends on the run's state is the board's to say."""
    if name == RESOLVE:
        return []
    node = spec.waits.get(name)
    if node is None:
        known = ", ".join(map(repr, [*spec.waits, RESOLVE]))
        return [f"graph {spec.name!r} takes no such signal ({known})"]
    assert node.wait is not None
    return problems(node.wait.schema, value) if node.wait.schema is not None else []


def _summary(value: Any) -> Any:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"
    return value if len(text) <= SUMMARY_CHARS else f"<{type(value).__name__}, {len(text)} chars>"


async def wait(board: RunBoard, node: NodeSpec, until: Until, now: datetime) -> Any:
    """Wait node ``node``: the first value sent as its signal (buffered ones first), or
    :data:`TIMED_OUT`."""
    spec = node.wait
    assert spec is not None
    deadline = None
    if spec.timeout is not None:
        deadline = datetime.fromtimestamp(now.timestamp() + spec.timeout, UTC).isoformat()
    board.waiting[node.name] = {
        "node": node.name,
        "signal": spec.signal,
        "key": spec.key,
        "until": deadline,
    }
    if board.events is not None:
        board.events(EventKind.NODE_WAITING, node.name)
    inbox = board.inbox.setdefault(spec.signal, deque())
    try:
        value = (
            inbox.popleft()
            if inbox or await until(lambda: bool(inbox), spec.timeout)
            else TIMED_OUT
        )
    finally:
        del board.waiting[node.name]
    if board.events is not None:  # the wait is over: its value arrived, or its timeout passed
        update = None if value is TIMED_OUT else {spec.key: value}
        board.events(EventKind.NODE_COMPLETED, node.name, update=update)
    return value


async def park_or_fail(
    board: RunBoard, name: str, failed: NodeFailedError, until: Until
) -> Resolution:
    """Park node ``name`` after ``failed`` until an operator resolves it; ``abort`` re-raises
    ``failed``."""
    board.parked[name] = {
        "node": name,
        "error": str(failed),
        "attempts": failed.attempt,
        "actions": list(ACTIONS),
    }
    if board.events is not None:
        board.events(EventKind.NODE_PARKED, name, failed.attempt, error=failed)
    try:
        await until(lambda: name in board.resolutions, None)
        resolution = board.resolutions.pop(name)
    finally:
        del board.parked[name]
    if resolution.action == "abort":
        raise failed
    return resolution
