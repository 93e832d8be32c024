"""The in-process drivers of the scheduler: one without an event loop, one on asyncio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from types import MappingProxyType
from typing import Any

from .._errors import RunError, RunTimeoutError
from .._events import EventKind, RunEvents
from .._execute import DeadlineExceeded, Pending, run_step, start_step
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
            sched.merge(i, run_step(steps[i], view, events, deadline))
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


async def run_async(plan: Plan, state: dict[str, Any], events: RunEvents | None) -> dict[str, Any]:
    """Run any graph on the running event loop, at most ``max_workers`` nodes at once.

    The run's timeout cancels every running task. Plain sync nodes run inline on the scheduler
    (no task); the rest run as tasks, which report
    completion through a done-callback (cheaper than ``asyncio.wait`` per completion). Tasks
    that finished together are taken in node order, so ties are reproducible.
    """
    spec = plan.spec
    graph = spec.name
    limit = spec.max_workers if spec.parallel else 1
    sched = Scheduler(plan.topology, plan.reducers, state, record_skips=events is not None)
    view = MappingProxyType(state)
    ready = sched.ready
    steps = plan.steps
    routers = plan.routers
    running: dict[asyncio.Task[Any], int] = {}

    async def complete(i: int, update: Any) -> None:
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
        if routers[i] is not None or events is not None:
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

    try:
        async with asyncio.timeout(spec.timeout):
            while True:
                while ready and len(running) < limit:
                    i = ready.popleft()
                    if not sched.start(i):
                        continue
                    update = start_step(steps[i], view, events)
                    if type(update) is Pending:
                        spawn(i, update.rest)
                    elif not finish_plain(i, update):
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
                    update = task.result()
                    if not finish_plain(i, update):
                        await complete(i, update)
    except TimeoutError as error:
        assert spec.timeout is not None
        names = tuple(plan.topology.names[i] for i in sorted(running.values()))
        raise RunTimeoutError(
            graph=graph, timeout=spec.timeout, node=None, state=dict(state), running=names
        ) from error
    except RunError as error:
        error.state = dict(state)
        raise
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
