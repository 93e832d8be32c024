"""The ``Runnable`` protocol and how plain callables become steps.

Anything with ``invoke``/``ainvoke`` is a Runnable (chains and compiled graphs are); a node or
chain step may also be a plain function or an ``async def`` function. How a step is called is
decided once, when it is added, by :func:`call_kind` — never guessed per call.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import functools
import inspect
import queue
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

__all__ = ["CallKind", "Runnable", "RunnableBase", "call_kind", "run_blocking", "sync_capable"]


@runtime_checkable
class Runnable(Protocol):
    """Something that turns an input into an output, sync or async, one or many at a time."""

    def invoke(self, input: Any) -> Any: ...

    async def ainvoke(self, input: Any) -> Any: ...

    def batch(self, inputs: Sequence[Any], *, max_concurrency: int | None = None) -> list[Any]: ...

    async def abatch(
        self, inputs: Sequence[Any], *, max_concurrency: int | None = None
    ) -> list[Any]: ...

    def stream(self, input: Any) -> Iterator[Any]: ...

    def astream(self, input: Any) -> AsyncIterator[Any]: ...


class CallKind(enum.Enum):
    """How the engines call a step."""

    INLINE = "inline"
    """A plain sync callable, run directly on the scheduler (cheapest)."""
    ASYNC = "async"
    """An ``async def`` callable, awaited."""
    THREAD = "thread"
    """A sync callable that blocks (I/O), run in a worker thread."""
    RUNNABLE = "runnable"
    """A Runnable: ``invoke`` when the run is sync and it can be, else ``ainvoke``."""


def _is_async_callable(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def call_kind(fn: object, *, blocking: bool = False, where: str) -> CallKind:
    """Classify ``fn`` once, so the engines never have to guess.

    Raises:
        TypeError: ``fn`` is not callable, or ``blocking=True`` was given for something that
            is not a plain sync callable.
    """
    if hasattr(fn, "ainvoke") and hasattr(fn, "invoke") and not inspect.isfunction(fn):
        kind = CallKind.RUNNABLE
    elif _is_async_callable(fn):
        kind = CallKind.ASYNC
    elif callable(fn):
        kind = CallKind.INLINE
    else:
        raise TypeError(f"{where}: expected a function, async function or Runnable, got {fn!r}")
    if blocking:
        if kind is not CallKind.INLINE:
            raise TypeError(
                f"{where}: blocking=True is for plain sync functions that do I/O; "
                f"{kind.value} steps never block the event loop"
            )
        return CallKind.THREAD
    return kind


def sync_capable(fn: object, kind: CallKind) -> bool:
    """Whether a step can run without an event loop."""
    if kind is CallKind.INLINE:
        return True
    if kind is CallKind.RUNNABLE:
        return bool(getattr(fn, "is_sync", False))
    return False


def run_blocking(coro: Coroutine[Any, Any, T], *, what: str) -> T:
    """Run ``coro`` to completion from sync code (not from inside an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        f"{what}: the sync API was called from a running event loop, where it would block it;"
        " use the async variant (ainvoke / abatch / astream) instead"
    )


class RunnableBase(abc.ABC):
    """Batch and stream for free, given ``invoke``, ``ainvoke`` and ``astream``."""

    @property
    @abc.abstractmethod
    def is_sync(self) -> bool:
        """True when ``invoke`` runs without an event loop."""

    @abc.abstractmethod
    def invoke(self, input: Any) -> Any: ...

    @abc.abstractmethod
    async def ainvoke(self, input: Any) -> Any: ...

    @abc.abstractmethod
    def astream(self, input: Any) -> AsyncIterator[Any]: ...

    def batch(self, inputs: Sequence[Any], *, max_concurrency: int | None = None) -> list[Any]:
        """Run every input; each slot holds its output, or the exception that item raised.

        Items of a sync Runnable run one after another (plain sync code gains nothing from
        concurrency); others run concurrently, at most ``max_concurrency`` at once.
        """
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency}")
        if self.is_sync:
            results: list[Any] = []
            for item in inputs:
                try:
                    results.append(self.invoke(item))
                except Exception as error:
                    results.append(error)
            return results
        return run_blocking(self.abatch(inputs, max_concurrency=max_concurrency), what="batch")

    async def abatch(
        self, inputs: Sequence[Any], *, max_concurrency: int | None = None
    ) -> list[Any]:
        """Run inputs concurrently, at most ``max_concurrency`` at once (None: no limit).

        Each slot holds its output, or the exception that item raised; one failure never
        fails the batch.
        """
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency}")
        limit = asyncio.Semaphore(max_concurrency or max(len(inputs), 1))

        async def one(item: Any) -> Any:
            async with limit:
                try:
                    return await self.ainvoke(item)
                except Exception as error:
                    return error

        return list(await asyncio.gather(*(one(item) for item in inputs)))

    def stream(self, input: Any) -> Iterator[Any]:
        """Yield ``astream``'s items from sync code, as they happen.

        The run happens on a private event loop in a helper thread. Leaving the loop early
        (``break``, an exception) cancels the run and waits for it to stop (a node already
        running in a worker thread finishes: threads cannot be interrupted).
        """
        items: queue.Queue[tuple[bool, Any]] = queue.Queue()
        started: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = queue.Queue()

        async def pump() -> None:
            task = asyncio.current_task()
            assert task is not None
            started.put((asyncio.get_running_loop(), task))
            async for item in self.astream(input):
                items.put((False, item))

        def work() -> None:
            try:
                asyncio.run(pump())
            except BaseException as error:
                items.put((True, error))
            else:
                items.put((True, None))

        thread = threading.Thread(target=work, name="belugaflow-stream", daemon=True)
        thread.start()
        loop, task = started.get()
        try:
            while True:
                finished, item = items.get()
                if finished:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            if thread.is_alive():
                loop.call_soon_threadsafe(task.cancel)
            thread.join()
