"""``RunHandle``: drive a started graph run — signal it, ask its progress, await or cancel it —
the same way in process (:class:`LocalRun`) and on Temporal
(:class:`~belugaflow.temporal.DurableRun`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .._errors import InputError
from ._board import RESOLVE, RunBoard, signal_problems

if TYPE_CHECKING:
    from ._spec import GraphSpec

__all__ = ["LocalRun", "RunHandle", "resolution"]


class RunHandle(Protocol):
    """A started graph run, on either engine."""

    @property
    def id(self) -> str:
        """The run's id: the workflow id on Temporal."""
        ...

    async def signal(self, name: str, value: Any = None) -> None:
        """Send ``value`` to the wait node that waits for signal ``name`` (it is kept until
        that node waits).

        Raises:
            InputError: the graph takes no such signal, or ``value`` breaks its schema.
        """
        ...

    async def update(self, name: str, value: Any = None) -> dict[str, Any]:
        """As :meth:`signal`, but the run itself accepts or refuses the value (an operator's
        ``resolve`` of a node that is not parked, say) before this returns its progress."""
        ...

    async def resolve(
        self,
        node: str | None,
        action: Literal["retry", "skip", "abort"],
        update: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Decide on a parked node: run it again, skip it with ``update`` as its result, or
        abort the run (its compensation runs). Returns the run's progress."""
        ...

    async def query(self, name: str = "progress") -> Any:
        """The run's ``progress``: status, running/waiting/parked/completed nodes, dropped
        signals and a summary of the state."""
        ...

    async def result(self) -> dict[str, Any]:
        """The final state, once the run ends.

        Raises:
            RunError: the run failed (the same subclass on both engines);
                :class:`~belugaflow.RunCancelledError` once it was cancelled.
        """
        ...

    async def cancel(self) -> None:
        """Ask the run to stop: nodes running finish, then the compensation of every node that
        started runs, newest first, and :meth:`result` raises ``RunCancelledError``."""
        ...


def resolution(
    node: str | None, action: str, update: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The value of a ``resolve`` signal."""
    value: dict[str, Any] = {"action": action}
    if node is not None:
        value["node"] = node
    if update is not None:
        value["update"] = update
    return value


def check_signal(spec: GraphSpec, name: str, value: Any) -> None:
    """Refuse, before it is sent, a signal no run of ``spec`` would take."""
    found = signal_problems(spec, name, value)
    if found:
        raise InputError(f"signal {name!r} to graph {spec.name!r}", found)


class LocalRun:
    """A graph run on this process's event loop; its state lives in memory."""

    def __init__(
        self, id: str, task: asyncio.Task[dict[str, Any]], board: RunBoard, state: dict[str, Any]
    ) -> None:
        self._id = id
        self._task = task
        self._board = board
        self._state = state

    def __repr__(self) -> str:
        return f"<LocalRun {self._id!r} of {self._board.spec.name!r}: {self._board.status}>"

    @property
    def id(self) -> str:
        return self._id

    async def signal(self, name: str, value: Any = None) -> None:
        check_signal(self._board.spec, name, value)
        self._board.signal(name, value)

    async def update(self, name: str, value: Any = None) -> dict[str, Any]:
        found = self._board.signal_problems(name, value)
        if found:
            raise InputError(f"update {name!r} to graph {self._board.spec.name!r}", found)
        self._board.signal(name, value)
        await asyncio.sleep(0)  # let the run take it, as the durable update's handler does
        return self._board.progress(self._state)

    async def resolve(
        self,
        node: str | None,
        action: Literal["retry", "skip", "abort"],
        update: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self.update(RESOLVE, resolution(node, action, update))

    async def query(self, name: str = "progress") -> Any:
        if name != "progress":
            raise ValueError(f"graph runs answer the query 'progress', not {name!r}")
        return self._board.progress(self._state)

    async def result(self) -> dict[str, Any]:
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        if not self._task.done():
            self._board.status = "cancelling"
            self._task.cancel()
