"""The in-process drivers of the scheduler: one without an event loop, one on asyncio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .._errors import NodeFailedError, RunCancelledError, RunError, RunTimeoutError
from .._events import EventKind, RunEvents
from .._execute import DeadlineExceeded, Pending, StepCall, arun_step, run_step, start_step
from ._board import RunBoard, Until, park_or_fail, wait
from ._plan import Plan, RouterCall
from ._scheduler import Scheduler

__all__ = ["emit_skips", "run_async", "run_sync"]


def _router_error(plan: Plan, i: int, error: Exception, state: Mapping[str, Any]) -> RunError:
    graph, node = plan.spec.name, plan.topology.names[i]
    return RunError(
        f"{graph!r}: the router after node {node!r} raised {type(error).__name__}: {error}",
        graph=graph,
        node=node,
        state=state,
    )


def emit_skips(sched: Scheduler, events: RunEvents) -> None:
    """Emit ``node.skipped`` for the nodes skipped since the last call."""
    skipped = sched.skipped
    if skipped:
        for n in skipped:
            events(EventKind.NODE_SKIPPED, sched.topo.names[n])
        skipped.clear()


def run_sync(plan: Plan, state: dict[str, Any], events: RunEvents | None) -> dict[str, Any]:
    """Run a graph whose nodes and routers are all sync, one node at a time.

    The run's timeout is checked between nodes and before retry sleeps: a plain sync call
    cannot be interrupted.
    """
    spec = plan.spec
    graph = spec.name
    sched = Scheduler(plan.topology, plan.reducers, state, record_skips=events is not None)
    view = MappingProxyType(state)
    ready = sched.ready
    steps = plan.steps
    routers = plan.routers
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    i = -1
    try:
        while ready:
            i = ready.popleft()
            if not sched.start(i):
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded
            step = steps[i]
            assert step is not None  # a graph with wait nodes never runs here
            sched.merge(i, run_step(step, view, events, deadline))
            router: RouterCall | None = routers[i]
            if router is None:
                sched.finish(i)
            else:
                try:
                    result = router.fn(view)
                except Exception as error:
                    raise _router_error(plan, i, error, state) from error
                sched.finish(i, sched.route(i, result))
            if events is not None:
                emit_skips(sched, events)
    except DeadlineExceeded as exc:
        assert spec.timeout is not None
        raise RunTimeoutError(
            graph=graph, timeout=spec.timeout, node=plan.topology.names[i], state=state
        ) from exc.__cause__
    except RunError as error:
        error.state = dict(state)
        raise
    return state


async def run_async(
    plan: Plan, state: dict[str, Any], events: RunEvents | None, board: RunBoard | None = None
) -> dict[str, Any]:
    """Run any graph on the running event loop, at most ``max_workers`` nodes at once.

    The run's timeout cancels every running task. Plain sync nodes run inline on the scheduler
    (no task); the rest run as tasks, which report
    completion through a done-callback (cheaper than ``asyncio.wait`` per completion). Tasks
    that finished together are taken in node order, so ties are reproducible.

    A graph that waits, parks or compensates runs with a ``board`` (its inbox and progress).
    Wait nodes hold no worker slot. A failed run, or one cancelled through the board, first
    lets the nodes still running end, then undoes the nodes that started, newest first.
    """
    spec = plan.spec
    graph = spec.name
    limit = spec.max_workers if spec.parallel else 1
    sched = Scheduler(plan.topology, plan.reducers, state, record_skips=events is not None)
    view = MappingProxyType(state)
    ready = sched.ready
    steps = plan.steps
    routers = plan.routers
    names = plan.topology.names
    running: dict[asyncio.Task[Any], int] = {}
    started: list[int] = []  # nodes with a compensation that started, in order
    until = _until(board) if board is not None else None
    waits = 0  # wait nodes running: they hold no worker slot

    async def complete(i: int, update: Any) -> None:
        if board is not None:
            board.running.remove(names[i])
            board.completed.append(names[i])
            if steps[i] is None and not sched.receive(i, update):  # a wait that timed out
                if events is not None:
                    emit_skips(sched, events)
                return
        if steps[i] is not None:
            sched.merge(i, update)
        router = plan.routers[i]
        if router is None:
            sched.finish(i)
        else:
            try:
                result = await router.fn(view) if router.is_async else router.fn(view)
            except Exception as error:
                raise _router_error(plan, i, error, state) from error
            sched.finish(i, sched.route(i, result))
        if events is not None:
            emit_skips(sched, events)

    def finish_plain(i: int, update: Any) -> bool:
        """The common case without an awaitable router, with no coroutine; False otherwise."""
        if routers[i] is not None or events is not None or board is not None:
            return False
        sched.merge(i, update)
        sched.finish(i)
        return True

    finished: list[asyncio.Task[Any]] = []
    wakeup: list[asyncio.Future[None]] = []

    def on_done(task: asyncio.Task[Any]) -> None:
        finished.append(task)
        if wakeup and not wakeup[0].done():
            wakeup[0].set_result(None)

    def spawn(i: int, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        task.add_done_callback(on_done)
        running[task] = i

    async def parkable(i: int, step: StepCall) -> Any:
        assert board is not None and until is not None
        while True:
            try:
                return await arun_step(step, view, events)
            except NodeFailedError as failed:
                resolution = await park_or_fail(board, names[i], failed, until)
                if resolution.action == "skip":
                    return resolution.update

    def begin(i: int) -> Any:
        """Start node ``i``: its update if it ran inline, else :data:`PENDING`."""
        nonlocal waits
        step = steps[i]
        if board is not None:
            board.running.append(names[i])
            if plan.compensations[i] is not None:
                started.append(i)
            if step is None:
                assert until is not None
                waits += 1
                spawn(i, wait(board, spec.nodes[i], until, datetime.now(UTC)))
                return PENDING
            if spec.nodes[i].on_failure == "park":
                spawn(i, parkable(i, step))
                return PENDING
        assert step is not None
        update = start_step(step, view, events)
        if type(update) is Pending:
            spawn(i, update.rest)
            return PENDING
        return update

    async def compensate() -> None:
        """Let running nodes end (waits and parked nodes are dropped), then undo, newest
        first, every node that started."""
        assert board is not None
        for task, i in running.items():
            if steps[i] is None or names[i] in board.parked:
                task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        running.clear()
        for i in reversed(started):
            undo = plan.compensations[i]
            assert undo is not None
            await arun_step(undo, view, events)

    try:
        async with asyncio.timeout(spec.timeout):
            while True:
                while ready and len(running) - waits < limit:
                    i = ready.popleft()
                    if not sched.start(i):
                        continue
                    update = begin(i)
                    if update is not PENDING and not finish_plain(i, update):
                        await complete(i, update)
                if not running:
                    return state
                if not finished:
                    wakeup.append(asyncio.get_running_loop().create_future())
                    await wakeup[0]
                    wakeup.clear()
                batch = sorted(finished, key=running.__getitem__)  # node order: reproducible ties
                finished.clear()
                for task in batch:
                    i = running.pop(task)
                    if steps[i] is None:
                        waits -= 1
                    update = task.result()
                    if not finish_plain(i, update):
                        await complete(i, update)
    except TimeoutError as error:
        assert spec.timeout is not None
        names_running = tuple(names[i] for i in sorted(running.values()))
        raise RunTimeoutError(
            graph=graph, timeout=spec.timeout, node=None, state=dict(state), running=names_running
        ) from error
    except RunError as error:
        if started:
            await compensate()
        error.state = dict(state)
        raise
    except asyncio.CancelledError:
        if board is None or board.status != "cancelling":
            raise
        await compensate()
        raise RunCancelledError(
            f"{graph!r}: the run was cancelled", graph=graph, state=dict(state)
        ) from None
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


PENDING: Any = object()
"""What :func:`run_async`'s ``begin`` returns for a node that runs as a task."""


def _until(board: RunBoard) -> Until:
    """Waiting on ``board`` in process: waiters wake whenever a signal or decision arrives."""
    waiters: list[asyncio.Future[None]] = []

    def wake() -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()

    async def until(predicate: Callable[[], bool], seconds: float | None) -> bool:
        try:
            async with asyncio.timeout(seconds):
                while not predicate():
                    waiter = asyncio.get_running_loop().create_future()
                    waiters.append(waiter)
                    await waiter
        except TimeoutError:
            return False
        return True

    board.on_change = wake
    return until
