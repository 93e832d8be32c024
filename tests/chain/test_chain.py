"""Chains: each step's output is the next step's input; per-step policies, whole-chain timeout,
batch, stream."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from belugaflow import (
    CallTimeoutError,
    Chain,
    CircuitBreaker,
    CircuitOpenError,
    Event,
    EventKind,
    Graph,
    NodeFailedError,
    NonRetryableError,
    RetryPolicy,
    RunTimeoutError,
    Step,
)
from belugaflow.resilience import BreakerRegistry
from belugaflow.testing import FakeClock

pytestmark = pytest.mark.usefixtures("no_backoff")


def add_one(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


class Flaky:
    """Fails ``failures`` times with ``error``, then returns its input."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("reset")
        self.calls = 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return x


# -- invoke ------------------------------------------------------------------------------------


def test_each_output_is_the_next_input() -> None:
    """invoke(x) of [f, g] is g(f(x))."""
    chain = Chain([add_one, double, add_one])
    assert chain.invoke(3) == 9


def test_sync_chain_runs_without_an_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain of plain functions runs in the caller's thread, with no event loop."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an event loop was created")

    monkeypatch.setattr(asyncio, "run", forbidden)
    monkeypatch.setattr(asyncio, "new_event_loop", forbidden)

    def where(x: int) -> int:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        assert threading.current_thread() is threading.main_thread()
        return x

    chain = Chain([where, add_one])
    assert chain.is_sync and chain.invoke(1) == 2


async def test_sync_async_and_runnable_steps_mix() -> None:
    """Sync functions, async functions, chains and graphs are all valid steps."""
    inner = Chain([add_one, double], name="inner")
    graph = Graph("g")
    graph.add_node("n", lambda s: {"y": s["x"] + 100}).set_entry_point("n").set_finish_point("n")
    chain = Chain(
        [add_one, async_square, inner, lambda x: {"x": x}, graph, lambda s: s["y"]],
        name="mixed",
    )
    assert not chain.is_sync
    assert await chain.ainvoke(2) == (9 + 1) * 2 + 100
    assert await asyncio.to_thread(chain.invoke, 2) == 120


async def test_async_chain_invoke_inside_a_running_loop_is_a_clear_error() -> None:
    """invoke() of a chain with async steps inside a running loop points to ainvoke."""
    chain = Chain([async_square])
    with pytest.raises(RuntimeError, match="ainvoke"):
        chain.invoke(2)
    assert await chain.ainvoke(3) == 9


def test_chain_validates_its_arguments() -> None:
    """An empty chain, a non-positive timeout and a non-callable step are rejected."""
    with pytest.raises(ValueError, match="at least one step"):
        Chain([])
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Chain([add_one], timeout=0)
    with pytest.raises(TypeError, match="step"):
        Chain([add_one, 42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="blocking=True"):
        Chain([Step(fn=async_square, blocking=True)])


def test_step_names_come_from_functions_or_positions() -> None:
    """Steps are named after their function (lambdas by position; repeats get #index)."""
    chain = Chain([add_one, lambda x: x, add_one, Step(fn=double, name="times2")])
    assert [s.name for s in chain.steps] == ["add_one", "step1", "add_one#2", "times2"]


# -- per-step policies -------------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_step_retry_counts_attempts(asynchronous: bool) -> None:
    """A Step's RetryPolicy retries it; other steps use the chain's."""
    flaky = Flaky(2)
    chain = Chain(
        [Step(fn=flaky, retry=RetryPolicy(max_attempts=3)), add_one],
        retry=RetryPolicy(max_attempts=1),
    )
    assert (await chain.ainvoke(1) if asynchronous else chain.invoke(1)) == 2
    assert flaky.calls == 3


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_failing_step_raises_node_failed_error(asynchronous: bool) -> None:
    """A step failing its last attempt raises NodeFailedError naming chain, step and attempt,
    with the original error as cause and the step's input in ``state``."""
    original = ValueError("bad input")
    chain = Chain(
        [add_one, Step(fn=Flaky(10, original), name="parse")],
        name="etl",
        retry=RetryPolicy(max_attempts=2),
    )
    with pytest.raises(NodeFailedError) as info:
        await chain.ainvoke(1) if asynchronous else chain.invoke(1)
    err = info.value
    assert str(err).startswith("'etl': node 'parse' failed on attempt 2/2 ")
    assert (err.graph, err.node, err.attempt) == ("etl", "parse", 2)
    assert err.__cause__ is original
    assert err.state == {"step": "parse", "input": 2}


async def test_non_retryable_step_error_fails_at_once() -> None:
    """NonRetryableError from a step is not retried."""
    flaky = Flaky(10, NonRetryableError("no"))
    with pytest.raises(NodeFailedError):
        await Chain([flaky], retry=RetryPolicy(max_attempts=5)).ainvoke(0)
    assert flaky.calls == 1


async def test_step_timeout_cancels_and_retries() -> None:
    """A Step over its timeout is cancelled and retried; the next attempt can succeed."""
    cancellations: list[int] = []
    calls: list[int] = []

    async def hangs_once(x: int) -> int:
        calls.append(1)
        if len(calls) == 1:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancellations.append(1)
                raise
        return x + 1

    chain = Chain([Step(fn=hangs_once, timeout=0.05, retry=RetryPolicy(max_attempts=2))])
    assert await chain.ainvoke(1) == 2
    assert cancellations == [1] and len(calls) == 2


async def test_step_timing_out_every_attempt_fails_with_call_timeout() -> None:
    """A step that always times out fails with NodeFailedError caused by CallTimeoutError."""

    async def hangs(x: int) -> int:
        await asyncio.sleep(5)
        return x

    chain = Chain([Step(fn=hangs, timeout=0.02, retry=RetryPolicy(max_attempts=2))])
    with pytest.raises(NodeFailedError) as info:
        await chain.ainvoke(1)
    assert isinstance(info.value.__cause__, CallTimeoutError) and info.value.attempt == 2


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_step_breaker_opens_and_rejects(asynchronous: bool) -> None:
    """A Step's circuit breaker opens after its failure threshold; then the step is rejected
    with CircuitOpenError without being called, until the recovery timeout passes."""
    clock = FakeClock()
    breaker = CircuitBreaker("api", failure_threshold=2, recovery_timeout=10, clock=clock)
    flaky = Flaky(2)
    chain = Chain([Step(fn=flaky, breaker=breaker, retry=RetryPolicy.none())])

    async def run() -> Any:
        return await chain.ainvoke(5) if asynchronous else chain.invoke(5)

    for _ in range(2):
        with pytest.raises(NodeFailedError):
            await run()
    with pytest.raises(NodeFailedError) as info:
        await run()
    assert isinstance(info.value.__cause__, CircuitOpenError) and flaky.calls == 2
    clock.advance(10)
    assert await run() == 5


def test_step_breakers_are_shared_through_the_registry() -> None:
    """A chain built with a BreakerRegistry registers its steps' breakers there."""
    registry = BreakerRegistry()
    breaker = CircuitBreaker("api")
    Chain([Step(fn=add_one, breaker=breaker)], breakers=registry)
    assert registry.get("api") is breaker


# -- whole-chain timeout -----------------------------------------------------------------------


async def test_chain_timeout_cancels_the_running_step() -> None:
    """An async chain over its timeout fails with RunTimeoutError naming the running step;
    the step is cancelled."""
    cancelled = asyncio.Event()

    async def slow(x: int) -> int:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    chain = Chain([add_one, slow, add_one], name="c", timeout=0.05)
    with pytest.raises(RunTimeoutError) as info:
        await chain.ainvoke(1)
    err = info.value
    assert err.node == "slow" and err.graph == "c" and err.timeout == 0.05
    assert err.state == {"step": "slow", "input": 2}
    assert cancelled.is_set()


def test_sync_chain_timeout_is_checked_between_steps() -> None:
    """A sync chain over its timeout stops before the next step."""
    ran: list[str] = []

    def slow(x: int) -> int:
        ran.append("slow")
        time.sleep(0.12)
        return x

    def after(x: int) -> int:
        ran.append("after")
        return x

    chain = Chain([slow, after], timeout=0.1)
    with pytest.raises(RunTimeoutError) as info:
        chain.invoke(1)
    assert ran == ["slow"] and info.value.node == "after"


# -- batch -------------------------------------------------------------------------------------


def explode_on_odd(x: int) -> int:
    if x % 2:
        raise NonRetryableError(f"odd {x}")
    return x


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_batch_keeps_failures_in_their_slots(asynchronous: bool) -> None:
    """batch/abatch return one slot per input, in order: the output or the exception object;
    a failure never raises for the batch."""
    steps: list[Any] = [explode_on_odd, async_square] if asynchronous else [explode_on_odd, double]
    chain = Chain(steps)
    inputs = [0, 1, 2, 3, 4]
    if asynchronous:
        results = await chain.abatch(inputs, max_concurrency=2)
    else:
        results = chain.batch(inputs)
    expected = [0, None, 4, None, 8] if not asynchronous else [0, None, 4, None, 16]
    for slot, want in zip(results, expected, strict=True):
        if want is None:
            assert isinstance(slot, NodeFailedError)
            assert isinstance(slot.__cause__, NonRetryableError)
        else:
            assert slot == want


async def test_abatch_is_bounded_by_max_concurrency() -> None:
    """abatch never runs more than max_concurrency items at once, and uses all of them."""
    active = 0
    peak = 0

    async def tracked(x: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return x

    chain = Chain([tracked])
    assert await chain.abatch(list(range(7)), max_concurrency=3) == list(range(7))
    assert peak == 3
    peak = 0
    await chain.abatch(list(range(5)))
    assert peak == 5


def test_batch_of_async_chain_from_sync_code_is_bounded() -> None:
    """batch() of an async chain runs on a private loop, bounded by max_concurrency."""
    active = 0
    peak = 0

    async def tracked(x: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        if x == 2:
            raise NonRetryableError("two")
        return x

    results = Chain([tracked]).batch([0, 1, 2, 3], max_concurrency=2)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], NodeFailedError) and peak == 2


async def test_abatch_rejects_a_non_positive_bound() -> None:
    """max_concurrency must be at least 1."""
    with pytest.raises(ValueError, match="max_concurrency"):
        await Chain([async_square]).abatch([1], max_concurrency=0)


# -- stream ------------------------------------------------------------------------------------


def summary(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(e.kind, e.node, e.attempt, e.update) for e in events]


EXPECTED = [
    (EventKind.RUN_STARTED, None, 0, 3),
    (EventKind.NODE_STARTED, "add_one", 1, None),
    (EventKind.NODE_COMPLETED, "add_one", 1, 4),
    (EventKind.NODE_STARTED, "async_square", 1, None),
    (EventKind.NODE_COMPLETED, "async_square", 1, 16),
    (EventKind.NODE_STARTED, "double", 1, None),
    (EventKind.NODE_COMPLETED, "double", 1, 32),
    (EventKind.RUN_COMPLETED, None, 0, 32),
]


async def test_astream_yields_an_event_per_step() -> None:
    """astream yields run start, each step's start and completion (with its output) and the
    run's completion, in order."""
    chain = Chain([add_one, async_square, double], name="c")
    events = [e async for e in chain.astream(3)]
    assert summary(events) == EXPECTED
    assert {e.graph for e in events} == {"c"}


def test_stream_from_sync_code_yields_the_same_events() -> None:
    """stream() yields the same events from sync code."""
    assert summary(list(Chain([add_one, async_square, double]).stream(3))) == EXPECTED


async def test_astream_reports_retries_and_failure_then_raises() -> None:
    """A failing chain streams retry, node.failed and run.failed events, then raises."""
    chain = Chain([add_one, Step(fn=Flaky(10), name="flaky")], retry=RetryPolicy(max_attempts=2))
    events: list[Event] = []
    with pytest.raises(NodeFailedError):
        async for event in chain.astream(1):
            events.append(event)
    assert [(e.kind, e.node, e.attempt) for e in events] == [
        (EventKind.RUN_STARTED, None, 0),
        (EventKind.NODE_STARTED, "add_one", 1),
        (EventKind.NODE_COMPLETED, "add_one", 1),
        (EventKind.NODE_STARTED, "flaky", 1),
        (EventKind.NODE_RETRY_SCHEDULED, "flaky", 1),
        (EventKind.NODE_STARTED, "flaky", 2),
        (EventKind.NODE_FAILED, "flaky", 2),
        (EventKind.RUN_FAILED, "flaky", 0),
    ]


def test_hooks_see_sync_invoke_events() -> None:
    """Hooks receive the same events from a sync invoke()."""
    events: list[Event] = []
    Chain([add_one, double, add_one], name="c", hooks=[events.append]).invoke(1)
    assert [(e.kind, e.node, e.update) for e in events] == [
        (EventKind.RUN_STARTED, None, 1),
        (EventKind.NODE_STARTED, "add_one", None),
        (EventKind.NODE_COMPLETED, "add_one", 2),
        (EventKind.NODE_STARTED, "double", None),
        (EventKind.NODE_COMPLETED, "double", 4),
        (EventKind.NODE_STARTED, "add_one#2", None),
        (EventKind.NODE_COMPLETED, "add_one#2", 5),
        (EventKind.RUN_COMPLETED, None, 5),
    ]
