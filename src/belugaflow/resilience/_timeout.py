"""Timeouts: a limit for one call (:func:`timeout_after`), a budget for a run (`Deadline`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

from belugaflow._duration import to_seconds
from belugaflow._errors import CallTimeoutError

__all__ = ["Deadline", "timeout_after"]


def timeout_after(
    seconds: float | timedelta | None, *, what: str
) -> AbstractAsyncContextManager[None]:
    """Limit the body of an ``async with`` block to ``seconds``.

    When the time is up the body is cancelled and :class:`~belugaflow.CallTimeoutError` is
    raised in its place (``what`` and ``timeout`` set, the :class:`TimeoutError` from
    :func:`asyncio.timeout` in ``__cause__``). The error is retryable, so a
    :class:`RetryPolicy` retries it like any other failure.

    Example::

        async with timeout_after(2.5, what="node 'fetch'"):
            await fetch()

    Args:
        seconds: The time limit, in seconds or as a timedelta. ``None`` means no limit.
        what: Names the call in the error message, e.g. ``"node 'fetch'"``.

    Returns:
        An async context manager, good for one ``async with``. Like :func:`asyncio.timeout`,
        call it inside a running event loop, where the ``async with`` is: the time limit
        starts counting at the call.

    Raises:
        ValueError: ``seconds`` is zero or negative. A zero timeout can only ever fail, so it is
            treated as a configuration mistake; leave the timeout out (``None``) instead.
    """
    if seconds is None:
        return _NO_TIMEOUT
    return _TimeoutAfter(to_seconds(seconds, "timeout"), what)


class _TimeoutAfter(AbstractAsyncContextManager[None]):
    # A plain class rather than @asynccontextmanager: this sits on every node attempt, and a
    # generator-based context manager costs several times more to enter and leave.
    __slots__ = ("_seconds", "_timeout", "_what")

    def __init__(self, seconds: float, what: str) -> None:
        self._seconds = seconds
        self._what = what
        # Like asyncio.timeout(), the clock starts now, i.e. at the `async with` line.
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError as expired:
            # asyncio.Timeout raises TimeoutError only for its own expiry; a TimeoutError from
            # the body passes through it untouched and never reaches this branch.
            raise CallTimeoutError(self._what, self._seconds) from expired


class _NoTimeout(AbstractAsyncContextManager[None]):
    """The ``timeout_after(None)`` case: costs nothing and changes nothing."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_NO_TIMEOUT = _NoTimeout()


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in time by which a whole run (or any multi-step job) must be done.

    Create it with :meth:`after` when the job starts, then check it between steps (sync code)
    or give each step what is left (async code)::

        deadline = Deadline.after(30)
        for step in steps:
            if deadline.expired:
                raise RunTimeoutError(...)
            async with timeout_after(deadline.remaining(), what=step.name):
                await step()

    Check :attr:`expired` before calling :func:`timeout_after` with :meth:`remaining`:
    a spent deadline has ``remaining() == 0``, which ``timeout_after`` rejects.
    """

    expires_at: float
    """When the budget runs out, on the scale of :attr:`clock` (seconds)."""
    timeout: float
    """The whole budget in seconds, as given to :meth:`after`; for error messages."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    """Returns the current time in seconds. Default :func:`time.monotonic`."""

    @classmethod
    def after(
        cls, seconds: float | timedelta, *, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """Return a deadline ``seconds`` from now.

        Args:
            seconds: The budget, in seconds or as a timedelta; must be positive.
            clock: Returns the current time in seconds. Default :func:`time.monotonic`, which
                is also the clock asyncio's event loop uses; tests pass a ``FakeClock``.

        Raises:
            ValueError: ``seconds`` is zero or negative.
        """
        budget = to_seconds(seconds, "seconds")
        return cls(expires_at=clock() + budget, timeout=budget, clock=clock)

    def remaining(self) -> float:
        """Return the seconds left before the deadline; ``0.0`` once it has passed."""
        left = self.expires_at - self.clock()
        return left if left > 0.0 else 0.0

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.clock() >= self.expires_at
