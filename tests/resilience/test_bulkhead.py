"""Bulkhead: concurrency cap, bounded queue, fairness and cancellation safety."""

from __future__ import annotations

import asyncio

import pytest

from belugaflow._errors import BulkheadFullError
from belugaflow.resilience import Bulkhead


async def test_never_more_than_max_concurrent() -> None:
    """With 20 callers and 3 slots, exactly 3 run at once at the peak and all finish."""
    bulkhead = Bulkhead("db", 3)
    running = peak = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1
        return i

    results = await asyncio.gather(*(bulkhead.call(work, i) for i in range(20)))
    assert results == list(range(20))
    assert peak == 3
    assert bulkhead.active == 0
    assert bulkhead.waiting == 0


async def test_waiters_are_served_in_order() -> None:
    """Queued callers get slots in the order they arrived."""
    bulkhead = Bulkhead("db", 1)
    order: list[int] = []
    gate = asyncio.Event()

    async def work(i: int) -> None:
        await gate.wait()
        order.append(i)

    tasks = [asyncio.create_task(bulkhead.call(work, i)) for i in range(5)]
    await asyncio.sleep(0)
    assert bulkhead.active == 1
    assert bulkhead.waiting == 4
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_rejects_when_the_queue_is_full() -> None:
    """Once max_waiting callers wait, the next one gets BulkheadFullError at once."""
    bulkhead = Bulkhead("db", 1, max_waiting=2)
    gate = asyncio.Event()
    tasks = [asyncio.create_task(bulkhead.call(gate.wait)) for _ in range(3)]
    await asyncio.sleep(0)
    assert (bulkhead.active, bulkhead.waiting) == (1, 2)
    with pytest.raises(BulkheadFullError) as caught:
        await bulkhead.call(gate.wait)
    assert caught.value.name == "db"
    assert caught.value.max_concurrent == 1
    gate.set()
    await asyncio.gather(*tasks)


async def test_max_waiting_zero_rejects_as_soon_as_full() -> None:
    """max_waiting=0 never queues: a call finding no free slot is rejected."""
    bulkhead = Bulkhead("db", 2, max_waiting=0)
    async with bulkhead, bulkhead:
        with pytest.raises(BulkheadFullError):
            async with bulkhead:
                pass  # pragma: no cover
    assert bulkhead.active == 0


async def test_cancelled_waiter_leaves_the_queue() -> None:
    """A waiter cancelled while queued frees its place and takes no slot."""
    bulkhead = Bulkhead("db", 1, max_waiting=1)
    gate = asyncio.Event()
    holder = asyncio.create_task(bulkhead.call(gate.wait))
    waiter = asyncio.create_task(bulkhead.call(gate.wait))
    await asyncio.sleep(0)
    assert bulkhead.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkhead.waiting == 0
    gate.set()
    await holder
    assert bulkhead.active == 0
    async with bulkhead:  # the slot is free again
        assert bulkhead.active == 1


async def test_waiter_cancelled_as_the_slot_arrives_passes_it_on() -> None:
    """A waiter cancelled right after being handed a slot gives it to the next waiter."""
    bulkhead = Bulkhead("db", 1)
    await bulkhead.acquire()
    first = asyncio.create_task(bulkhead.acquire())
    second = asyncio.create_task(bulkhead.acquire())
    await asyncio.sleep(0)
    bulkhead.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it can run
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # got the slot instead
    assert bulkhead.active == 1
    bulkhead.release()
    assert bulkhead.active == 0


async def test_slot_is_released_when_the_call_fails() -> None:
    """A call that raises gives its slot back."""
    bulkhead = Bulkhead("db", 1)

    async def explode() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await bulkhead.call(explode)
    assert bulkhead.active == 0


def test_release_without_acquire_is_an_error() -> None:
    """Releasing more often than acquiring raises instead of corrupting the count."""
    with pytest.raises(RuntimeError, match="released more often"):
        Bulkhead("db", 1).release()


@pytest.mark.parametrize(
    ("max_concurrent", "max_waiting", "field"),
    [(0, None, "max_concurrent"), (1, -1, "max_waiting")],
)
def test_invalid_settings_name_the_field(
    max_concurrent: int, max_waiting: int | None, field: str
) -> None:
    """Out-of-range settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=field):
        Bulkhead("db", max_concurrent, max_waiting=max_waiting)


def test_repr_shows_usage() -> None:
    """repr shows the name, active/max and waiting counts."""
    assert repr(Bulkhead("db", 4)) == "Bulkhead('db', active=0/4, waiting=0)"
