"""Bulkhead: cap how many calls to one dependency run at once, and how many may queue."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from belugaflow._errors import BulkheadFullError

__all__ = ["Bulkhead"]

P = ParamSpec("P")
T = TypeVar("T")


class Bulkhead:
    """Lets at most ``max_concurrent`` calls run at once; the rest wait in line (FIFO).

    Use it as ``async with bulkhead: ...`` or ``await bulkhead.call(fn, *args)``. A call that
    finds every slot busy waits for one; if ``max_waiting`` calls are already waiting it is
    rejected at once with :class:`~belugaflow.BulkheadFullError` (retryable).

    Cancellation-safe: a waiter cancelled while queued leaves the queue, and one cancelled
    just as a slot was handed to it passes the slot on, so no slot ever leaks.

    A bulkhead belongs to one event loop and is not thread-safe (no locks on the fast path:
    entering a free bulkhead does not even yield to the loop).

    Args:
        name: Names the protected resource in errors and metrics.
        max_concurrent: Calls allowed to run at once; at least 1.
        max_waiting: Calls allowed to wait for a slot. ``None`` (default): no limit;
            ``0``: reject at once when every slot is busy.

    Raises:
        ValueError: ``max_concurrent`` < 1 or ``max_waiting`` < 0.
    """

    __slots__ = ("_active", "_waiters", "max_concurrent", "max_waiting", "name")

    def __init__(self, name: str, max_concurrent: int, *, max_waiting: int | None = None) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if max_waiting is not None and max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0 or None (no limit), got {max_waiting}")
        # Public for introspection; treat them as read-only.
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self._active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def active(self) -> int:
        """Calls holding a slot right now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot right now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, active={self._active}/{self.max_concurrent},"
            f" waiting={self.waiting})"
        )

    async def acquire(self) -> None:
        """Take a slot, waiting for one if needed. Pair every call with :meth:`release`.

        Raises:
            BulkheadFullError: Every slot is busy and ``max_waiting`` calls already wait.
        """
        # `not self._waiters` keeps the line fair: newcomers don't overtake those waiting.
        if self._active < self.max_concurrent and not self._waiters:
            self._active += 1
            return
        if self.max_waiting is not None and self.waiting >= self.max_waiting:
            raise BulkheadFullError(self.name, max_concurrent=self.max_concurrent)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() hands its slot over by resolving this future
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot arrived together with the cancellation: pass it on
            else:
                with contextlib.suppress(ValueError):  # release() may have dropped it already
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`, handing it to the next waiter if any."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # skip waiters cancelled but not yet cleaned up
                waiter.set_result(None)  # the slot moves over; `_active` stays the same
                return
        if self._active <= 0:
            raise RuntimeError(f"bulkhead {self.name!r} released more often than acquired")
        self._active -= 1

    # An alias, not a method awaiting acquire(): one coroutine fewer on every entry.
    __aenter__ = acquire

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` inside the bulkhead and return its result.

        Raises:
            BulkheadFullError: No slot and no room to wait; ``fn`` did not run.
        """
        await self.acquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()
