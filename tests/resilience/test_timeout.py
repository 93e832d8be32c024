"""timeout_after and Deadline."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from belugaflow._errors import CallTimeoutError
from belugaflow.resilience import Deadline, RetryPolicy, timeout_after
from belugaflow.testing import FakeClock


async def test_slow_call_is_cancelled_and_reported() -> None:
    """A body outliving its timeout is cancelled and CallTimeoutError names what and how long."""
    cancelled = False

    async def slow() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled = True
            raise

    with pytest.raises(CallTimeoutError) as caught:
        async with timeout_after(0.01, what="node 'fetch'"):
            await slow()
    assert cancelled
    assert caught.value.what == "node 'fetch'"
    assert caught.value.timeout == 0.01
    assert str(caught.value) == "node 'fetch' timed out after 0.01 s"
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert RetryPolicy().is_retryable(caught.value)


async def test_fast_call_is_untouched() -> None:
    """A body finishing in time runs normally."""
    async with timeout_after(timedelta(seconds=5), what="step"):
        await asyncio.sleep(0)


async def test_none_means_no_timeout() -> None:
    """timeout_after(None) does not limit the body."""
    async with timeout_after(None, what="step"):
        await asyncio.sleep(0.001)


async def test_errors_from_the_body_pass_through() -> None:
    """Exceptions raised by the body, TimeoutError included, are not converted."""
    with pytest.raises(TimeoutError) as caught:
        async with timeout_after(5, what="step"):
            raise TimeoutError("from the body")
    assert not isinstance(caught.value, CallTimeoutError)
    with pytest.raises(KeyError):
        async with timeout_after(5, what="step"):
            raise KeyError("x")


async def test_outer_cancellation_is_not_a_timeout() -> None:
    """Cancelling the task from outside propagates CancelledError, not CallTimeoutError."""

    async def guarded() -> None:
        async with timeout_after(5, what="step"):
            await asyncio.sleep(3600)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("seconds", [0, -1, 0.0, timedelta(0)])
def test_zero_or_negative_timeout_is_an_error(seconds: float | timedelta) -> None:
    """A zero or negative timeout raises ValueError: it could only ever fail."""
    with pytest.raises(ValueError, match="timeout must be > 0 seconds"):
        timeout_after(seconds, what="step")


def test_deadline_counts_down() -> None:
    """remaining() shrinks with the clock, stops at 0, and expired flips at the deadline."""
    clock = FakeClock(50.0)
    deadline = Deadline.after(10, clock=clock)
    assert deadline.timeout == 10.0
    assert deadline.remaining() == 10.0
    assert not deadline.expired
    clock.advance(timedelta(seconds=4))
    assert deadline.remaining() == 6.0
    clock.advance(6)
    assert deadline.expired
    assert deadline.remaining() == 0.0
    clock.advance(1)
    assert deadline.remaining() == 0.0


async def test_deadline_feeds_timeout_after() -> None:
    """What is left of a deadline bounds an async step."""
    deadline = Deadline.after(0.01)
    with pytest.raises(CallTimeoutError):
        async with timeout_after(deadline.remaining(), what="step"):
            await asyncio.sleep(3600)
    assert deadline.expired


def test_deadline_rejects_non_positive_budgets() -> None:
    """A zero or negative budget raises ValueError."""
    with pytest.raises(ValueError, match="seconds must be > 0 seconds"):
        Deadline.after(0)
