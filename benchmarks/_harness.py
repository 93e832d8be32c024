"""Timing helpers: warm up, sample with ``perf_counter_ns``, summarise as median and p90."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["asample", "peak_rss_mib", "quantiles", "sample", "sample_batched"]


def sample(fn: Callable[[Any], Any], arg: Any, *, warmup: int, reps: int) -> list[float]:
    """Nanoseconds of each of ``reps`` calls ``fn(arg)``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn(arg)
    clock = time.perf_counter_ns
    out: list[float] = []
    for _ in range(reps):
        start = clock()
        fn(arg)
        out.append(clock() - start)
    return out


def sample_batched(
    fn: Callable[[Any], Any], arg: Any, *, warmup: int, reps: int, batch: int
) -> list[float]:
    """Nanoseconds per call, averaged over ``batch`` calls, ``reps`` times.

    For calls of a few microseconds or less, where timing each call would mostly time the
    clock.
    """
    for _ in range(warmup):
        fn(arg)
    clock = time.perf_counter_ns
    loop = range(batch)
    out: list[float] = []
    for _ in range(reps):
        start = clock()
        for _ in loop:
            fn(arg)
        out.append((clock() - start) / batch)
    return out


async def asample(
    fn: Callable[[Any], Awaitable[Any]], arg: Any, *, warmup: int, reps: int
) -> list[float]:
    """Nanoseconds of each of ``reps`` awaits of ``fn(arg)``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        await fn(arg)
    clock = time.perf_counter_ns
    out: list[float] = []
    for _ in range(reps):
        start = clock()
        await fn(arg)
        out.append(clock() - start)
    return out


def quantiles(samples_ns: Sequence[float], scale: float) -> tuple[float, float]:
    """(median, p90) of ``samples_ns`` divided by ``scale`` (1e3 for µs, 1e6 ms, 1e9 s)."""
    median = statistics.median(samples_ns)
    if len(samples_ns) < 2:
        return median / scale, median / scale
    p90 = statistics.quantiles(samples_ns, n=10, method="inclusive")[8]
    return median / scale, p90 / scale


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
