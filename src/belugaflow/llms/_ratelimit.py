"""Token buckets that keep calls to a provider under its requests- and tokens-per-minute limits.

Waiting here, before the call, is cheaper than a 429 and a retry: the provider counts rejected
requests against the limit too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class _Bucket:
    """A bucket of ``per_minute`` units that refills continuously and may go into debt."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.level = per_minute
        self.rate = per_minute / 60.0
        self.updated = now

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` now; return the seconds until the bucket is out of debt."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        self.level = min(self.capacity, self.level - amount)  # a refund cannot overfill it
        return -self.level / self.rate if self.level < 0 else 0.0


class RateLimiter:
    """Requests- and tokens-per-minute limits for one provider, shared by every call to it.

    Each call reserves one request and its estimated tokens before it is sent, and waits if the
    reservation puts a bucket into debt; so calls queue in arrival order instead of polling.
    Once the answer says how many tokens were really used, :meth:`adjust` corrects the
    estimate. Buckets start full: a burst of up to a minute's allowance goes out at once.

    Thread-safe: one limiter may serve models on several event loops.

    Args:
        requests_per_minute: Most requests per minute; None for no request limit.
        tokens_per_minute: Most tokens per minute; None for no token limit.
        clock: Returns the current time in seconds. Default :func:`time.monotonic`.

    Raises:
        ValueError: A limit is not positive.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        now = clock()
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute else None
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_minute={self.requests_per_minute},"
            f" tokens_per_minute={self.tokens_per_minute})"
        )

    def reserve(self, tokens: int = 0) -> float:
        """Reserve one request and ``tokens`` tokens; return the seconds to wait before sending.

        The reservation stands even if the caller does not wait; release it with
        ``adjust(-tokens)`` and :meth:`release_request` if the call is abandoned.
        """
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self._requests is not None:
                wait = self._requests.take(1, now)
            if self._tokens is not None and tokens:
                wait = max(wait, self._tokens.take(tokens, now))
            return wait

    def adjust(self, tokens: int) -> None:
        """Correct the tokens reserved: positive if more were used, negative if fewer."""
        if self._tokens is None or not tokens:
            return
        with self._lock:
            self._tokens.take(tokens, self._clock())

    def release_request(self) -> None:
        """Give back the request of a reservation whose call was never sent."""
        if self._requests is None:
            return
        with self._lock:
            self._requests.take(-1, self._clock())

    async def acquire(self, tokens: int = 0) -> None:
        """Reserve, then sleep until the reservation is covered.

        A cancelled wait gives its reservation back, so abandoned calls do not slow others.
        """
        wait = self.reserve(tokens)
        if wait <= 0:
            return
        try:
            await asyncio.sleep(wait)
        except BaseException:
            self.release_request()
            self.adjust(-tokens)
            raise
