"""RateLimiter: token buckets for requests and tokens per minute, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from belugaflow.llms import RateLimiter
from belugaflow.testing import FakeClock


def test_a_full_minute_of_requests_goes_out_at_once_then_they_are_paced() -> None:
    """60 per minute: 60 requests without waiting, the 61st waits a second, the 62nd two."""
    limiter = RateLimiter(requests_per_minute=60, clock=FakeClock())
    assert [limiter.reserve() for _ in range(60)] == [0.0] * 60
    assert limiter.reserve() == pytest.approx(1.0)
    assert limiter.reserve() == pytest.approx(2.0)


def test_the_buckets_refill_with_time() -> None:
    """After ten seconds, ten more requests of a 60-per-minute limit are free."""
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    for _ in range(60):
        limiter.reserve()
    clock.advance(10)
    assert [limiter.reserve() for _ in range(10)] == [0.0] * 10
    assert limiter.reserve() > 0


def test_tokens_are_limited_and_corrected_by_real_usage() -> None:
    """An estimate that was too high is given back; the real count is charged."""
    limiter = RateLimiter(tokens_per_minute=600, clock=FakeClock())
    assert limiter.reserve(500) == 0.0
    limiter.adjust(-400)  # only 100 were used
    assert limiter.reserve(500) == 0.0
    assert limiter.reserve(60) == pytest.approx(6.0)  # 60 tokens at 10 per second


def test_the_slower_bucket_sets_the_wait() -> None:
    """With both limits, the wait is the longer of the two."""
    limiter = RateLimiter(requests_per_minute=600, tokens_per_minute=60, clock=FakeClock())
    limiter.reserve(60)
    assert limiter.reserve(30) == pytest.approx(30.0)


def test_a_refund_never_overfills_a_bucket() -> None:
    """Giving back more than was taken leaves the bucket full, not fuller."""
    limiter = RateLimiter(requests_per_minute=1, clock=FakeClock())
    limiter.release_request()
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(60.0)


async def test_a_cancelled_wait_gives_its_reservation_back() -> None:
    """A call abandoned while waiting does not count against the limit."""
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=1, clock=clock)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    clock.advance(60)
    assert limiter.reserve() == 0.0


@pytest.mark.parametrize("limit", [0, -1])
def test_limits_must_be_positive(limit: int) -> None:
    """Zero or negative limits are configuration mistakes."""
    with pytest.raises(ValueError, match="requests_per_minute must be > 0"):
        RateLimiter(requests_per_minute=limit)
