"""``CompiledGraph``: a validated, runnable graph."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from .._errors import BelugaflowError, RunCancelledError
from .._events import Event, EventKind, Hook, RunEvents, new_run_id, stream_events
from .._runnable import RunnableBase, run_blocking
from .._schema import check
from ..resilience import BreakerRegistry
from ._board import RunBoard
from ._handle import LocalRun
from ._local import run_async, run_sync
from ._plan import compile_plan
from ._reducers import SubgraphUpdate
from ._registry import Registry
from ._spec import GraphSpec

__all__ = ["CompiledGraph"]


class CompiledGraph(RunnableBase):
    """A graph ready to run: its :class:`GraphSpec` plus the callables its names resolve to.

    ``invoke`` of a graph whose nodes and routers are all plain sync functions runs without an
    event loop; any other graph runs on asyncio (``invoke`` then starts a private loop).
    """

    def __init__(
        self,
        spec: GraphSpec,
        registry: Registry,
        *,
        breakers: BreakerRegistry | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.spec = spec
        self.registry = registry
        self._plan = compile_plan(spec, registry, breakers or BreakerRegistry())
        self._hooks = tuple(hooks)

    def __repr__(self) -> str:
        return (
            f"<CompiledGraph {self.spec.name!r} v{self.spec.version}: {len(self.spec.nodes)} nodes>"
        )

    @property
    def name(self) -> str:
        """The graph's name."""
        return self.spec.name

    @property
    def is_sync(self) -> bool:
        return self._plan.sync_ok

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        return self.spec.to_mermaid()

    def _state(self, input: Any) -> dict[str, Any]:
        if not isinstance(input, Mapping):
            raise TypeError(
                f"graph {self.spec.name!r}: input must be a dict of state, "
                f"got {type(input).__name__}"
            )
        if self.spec.input_schema is not None:
            check(self.spec.input_schema, input, f"input of graph {self.spec.name!r}")
        return dict(input)

    async def start(self, input: Mapping[str, Any], *, id: str | None = None) -> LocalRun:
        """Start a run on the running loop and return its handle, to signal it, ask its
        progress, cancel it and await its result (the durable engine's handle works alike).

        Raises:
            InputError: ``input`` breaks the graph's input schema (nothing started).
        """
        state = self._state(input)
        run_id = id or new_run_id()
        events = RunEvents.open(self._hooks, self.spec.name, run_id)
        board = RunBoard(self.spec, events)
        task = asyncio.create_task(self._drive(state, events, board))
        return LocalRun(run_id, task, board, state)

    def invoke(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Run the graph on ``input`` and return the final state."""
        if not self._plan.sync_ok:
            return run_blocking(self.ainvoke(input), what=f"graph {self.spec.name!r}")
        state = self._state(input)
        events = RunEvents.open(self._hooks, self.spec.name)
        if events is None:
            return run_sync(self._plan, state, None)
        began = time.monotonic()
        events(EventKind.RUN_STARTED, state=dict(state))
        try:
            result = run_sync(self._plan, state, events)
        except BelugaflowError as error:
            _run_failed(events, error, began)
            raise
        events(EventKind.RUN_COMPLETED, state=result, duration=time.monotonic() - began)
        return result

    async def ainvoke(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Run the graph on ``input`` on the running loop and return the final state."""
        return await self._arun(self._state(input), self._hooks)

    async def _arun(self, state: dict[str, Any], listeners: Sequence[Hook]) -> dict[str, Any]:
        events = RunEvents.open(listeners, self.spec.name)
        board = RunBoard(self.spec, events) if self._plan.needs_board else None
        if events is None and board is None:
            return await run_async(self._plan, state, None)
        return await self._drive(state, events, board)

    async def _drive(
        self, state: dict[str, Any], events: RunEvents | None, board: RunBoard | None
    ) -> dict[str, Any]:
        began = time.monotonic()
        if events is not None:
            events(EventKind.RUN_STARTED, state=dict(state))
        try:
            result = await run_async(self._plan, state, events, board)
        except BelugaflowError as error:
            if board is not None:
                board.status = "cancelled" if isinstance(error, RunCancelledError) else "failed"
                board.running.clear()
            if events is not None:
                _run_failed(events, error, began)
            raise
        if board is not None:
            board.status = "completed"
        if events is not None:
            events(EventKind.RUN_COMPLETED, state=result, duration=time.monotonic() - began)
        return result

    async def astream(self, input: Mapping[str, Any]) -> AsyncIterator[Event]:
        """Yield run and node events as they happen; the last is ``run.completed``.

        If the run fails, the ``run.failed`` event is yielded, then the error is raised.
        """
        state = self._state(input)
        stream = stream_events(self._hooks, lambda listeners: self._arun(state, listeners))
        async with aclosing(stream):  # closing this generator stops the run at once
            async for event in stream:
                yield event


def _run_failed(events: RunEvents, error: BaseException, began: float) -> None:
    state = getattr(error, "state", None)
    events(
        EventKind.RUN_CANCELLED if isinstance(error, RunCancelledError) else EventKind.RUN_FAILED,
        error=error,
        state=dict(state) if state is not None else None,
        duration=time.monotonic() - began,
    )


class SubgraphNode(RunnableBase):
    """A compiled graph used as a node: it runs on a snapshot of the state, and what it changed
    merges back (as deltas for keys the parent combines with a built-in reducer)."""

    def __init__(self, graph: CompiledGraph) -> None:
        self.graph = graph

    @property
    def is_sync(self) -> bool:
        return self.graph.is_sync

    def invoke(self, input: Mapping[str, Any]) -> SubgraphUpdate:
        before = dict(input)
        return SubgraphUpdate(before, self.graph.invoke(before))

    async def ainvoke(self, input: Mapping[str, Any]) -> SubgraphUpdate:
        before = dict(input)
        return SubgraphUpdate(before, await self.graph.ainvoke(before))

    def astream(self, input: Mapping[str, Any]) -> AsyncIterator[Event]:
        return self.graph.astream(input)
