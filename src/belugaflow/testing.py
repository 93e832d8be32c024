"""Tools for testing code that uses belugaflow: no-backoff mode and a fake clock.

Not imported by ``import belugaflow``; import it from your tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from belugaflow.resilience._retry import _set_backoff_disabled

__all__ = ["FakeClock", "no_backoff", "set_testing"]


def set_testing(on: bool = True) -> None:
    """Turn testing mode on or off for the whole process.

    In testing mode the engines skip the sleep between retry attempts, so a test of a flaky
    node runs all its attempts at once. Retry *decisions* are unchanged: the same errors are
    retried the same number of times. For a limited stretch of code, prefer :func:`no_backoff`.

    Args:
        on: ``True`` to skip retry sleeps, ``False`` to restore them.
    """
    _set_backoff_disabled(on)


@contextmanager
def no_backoff() -> Iterator[None]:
    """Skip retry sleeps inside the ``with`` block, then restore the previous setting."""
    previous = _set_backoff_disabled(True)
    try:
        yield
    finally:
        _set_backoff_disabled(previous)


class FakeClock:
    """A clock that only moves when told to; pass it wherever a ``clock=`` is accepted.

    Calling it returns the current fake time in seconds, like :func:`time.monotonic`::

        clock = FakeClock()
        breaker = CircuitBreaker("payments", clock=clock)
        clock.advance(30)

    Args:
        start: The initial time in seconds. Default 0.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move the clock forward.

        Raises:
            ValueError: ``seconds`` is negative; monotonic clocks never go back.
        """
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError(f"a FakeClock only moves forward, got advance({seconds!r})")
        self._now += step

    def __repr__(self) -> str:
        return f"FakeClock({self._now:g})"
