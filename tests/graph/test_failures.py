"""Failures of graph runs: retries, timeouts, run timeout, circuit breakers, errors and events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from belugaflow import (
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Event,
    EventKind,
    Graph,
    NodeFailedError,
    NonRetryableError,
    Orchestrator,
    RetryableError,
    RetryPolicy,
    RunError,
    RunTimeoutError,
)
from belugaflow.testing import FakeClock

pytestmark = pytest.mark.usefixtures("no_backoff")

Run = Callable[[Graph], Awaitable[dict[str, Any]]]


async def run_sync(g: Graph) -> dict[str, Any]:
    """invoke() in a worker thread (the sync driver for all-sync graphs)."""
    return await asyncio.to_thread(g.invoke, {})


async def run_async(g: Graph) -> dict[str, Any]:
    return await g.ainvoke({})


DRIVERS = pytest.mark.parametrize("run", [run_sync, run_async], ids=["invoke", "ainvoke"])


class Flaky:
    """A node failing ``failures`` times with ``error``, then writing ``{key: attempts}``."""

    def __init__(self, failures: int, error: Exception | None = None, key: str = "done") -> None:
        self.failures = failures
        self.error = error or ConnectionError("reset")
        self.key = key
        self.calls = 0

    def __call__(self, state: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {self.key: self.calls}


def single(fn: Any, *, retry: RetryPolicy | None = None, **node: Any) -> Graph:
    g = Graph("g", retry=retry or RetryPolicy(max_attempts=3))
    g.add_node("first", lambda s: {"first": True})
    g.add_node("x", fn, **node).add_edge("first", "x")
    return g.set_entry_point("first").set_finish_point("x")


# -- retries -----------------------------------------------------------------------------------


@DRIVERS
async def test_flaky_node_is_retried_until_it_succeeds(run: Run) -> None:
    """A node failing twice succeeds on its third attempt under max_attempts=3."""
    node = Flaky(2)
    state = await run(single(node))
    assert node.calls == 3 and state["done"] == 3


@DRIVERS
async def test_node_fails_after_its_last_attempt(run: Run) -> None:
    """A node that keeps failing is called max_attempts times, then fails the run."""
    node = Flaky(10)
    with pytest.raises(NodeFailedError) as info:
        await run(single(node, retry=RetryPolicy(max_attempts=4)))
    assert node.calls == 4 and info.value.attempt == 4


@DRIVERS
async def test_node_retry_policy_overrides_the_graph_default(run: Run) -> None:
    """A node's own RetryPolicy wins over the graph's."""
    node = Flaky(10)
    with pytest.raises(NodeFailedError):
        await run(single(node, retry=RetryPolicy(max_attempts=5)))
    assert node.calls == 5
    node = Flaky(10)
    g = Graph("g", retry=RetryPolicy(max_attempts=5))
    g.add_node("x", node, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(NodeFailedError):
        await run(g.set_entry_point("x").set_finish_point("x"))
    assert node.calls == 2


@DRIVERS
@pytest.mark.parametrize(
    ("error", "policy"),
    [
        (NonRetryableError("declined"), RetryPolicy(max_attempts=5)),
        (KeyError("sku"), RetryPolicy(max_attempts=5, non_retryable=(LookupError,))),
        (ValueError("bad"), RetryPolicy(max_attempts=5, non_retryable_names=("ValueError",))),
    ],
    ids=["NonRetryableError", "non_retryable-subclass", "non_retryable_names"],
)
async def test_non_retryable_error_fails_at_once(
    run: Run, error: Exception, policy: RetryPolicy
) -> None:
    """A non-retryable error fails the node on its first attempt."""
    node = Flaky(10, error)
    with pytest.raises(NodeFailedError) as info:
        await run(single(node, retry=policy))
    assert node.calls == 1 and info.value.attempt == 1
    assert info.value.__cause__ is error and info.value.retryable is False


async def test_error_saying_retryable_false_is_not_retried() -> None:
    """Any error with retryable=False is not retried."""
    error = RuntimeError("stop")
    error.retryable = False  # type: ignore[attr-defined]
    node = Flaky(10, error)
    with pytest.raises(NodeFailedError):
        await single(node).ainvoke({})
    assert node.calls == 1


@DRIVERS
async def test_backoff_delays_follow_the_policy(run: Run) -> None:
    """With backoff on, retry events announce initial_interval * coefficient**n (no jitter)
    and the run really waits about that long; a retry_after hint is a floor."""
    from belugaflow import testing

    testing.set_testing(False)
    events: list[Event] = []
    node = Flaky(2, RetryableError("busy", retry_after=0.05))
    g = Graph(
        "g",
        retry=RetryPolicy(max_attempts=4, initial_interval=0.02, backoff_coefficient=2, jitter=0),
        hooks=[events.append],
    )
    g.add_node("x", node).set_entry_point("x").set_finish_point("x")
    started = time.monotonic()
    await run(g)
    elapsed = time.monotonic() - started
    delays = [e.delay for e in events if e.kind is EventKind.NODE_RETRY_SCHEDULED]
    assert delays == [0.05, 0.05]  # max(0.02, hint), max(0.04, hint)
    assert elapsed >= 0.1
    events.clear()
    node = Flaky(2)
    g = Graph(
        "h",
        retry=RetryPolicy(max_attempts=3, initial_interval=0.02, backoff_coefficient=3, jitter=0),
        hooks=[events.append],
    )
    g.add_node("x", node).set_entry_point("x").set_finish_point("x")
    await run(g)
    delays = [e.delay for e in events if e.kind is EventKind.NODE_RETRY_SCHEDULED]
    assert delays == pytest.approx([0.02, 0.06])


async def test_no_backoff_skips_the_sleeps_but_not_the_attempts() -> None:
    """In testing mode a policy with long intervals still makes every attempt, at once."""
    node = Flaky(2)
    g = single(node, retry=RetryPolicy(max_attempts=3, initial_interval=60))
    started = time.monotonic()
    await g.ainvoke({})
    assert node.calls == 3 and time.monotonic() - started < 1


# -- NodeFailedError ---------------------------------------------------------------------------


@DRIVERS
async def test_node_failed_error_names_graph_node_and_attempt(run: Run) -> None:
    """NodeFailedError says which graph, node and attempt failed, chains the original error
    and carries the partial state."""
    original = ConnectionError("gateway reset")
    node = Flaky(10, original)
    with pytest.raises(NodeFailedError) as info:
        await run(single(node))
    err = info.value
    assert str(err).startswith("'g': node 'x' failed on attempt 3/3 ")
    assert "ConnectionError: gateway reset" in str(err)
    assert (err.graph, err.node, err.attempt, err.max_attempts) == ("g", "x", 3, 3)
    assert err.__cause__ is original
    assert err.state == {"first": True}
    assert err.code == "node_failed"


async def test_failing_node_cancels_the_other_running_nodes() -> None:
    """When a node fails, sibling nodes still running are cancelled and the run fails."""
    cancelled = asyncio.Event()

    async def slow(state: Any) -> dict[str, Any]:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"slow": True}

    async def boom(state: Any) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    g = Graph("g", retry=RetryPolicy.none())
    g.add_node("start", lambda s: None).add_node("slow", slow).add_node("boom", boom)
    g.add_edge("start", "slow").add_edge("start", "boom")
    g.set_entry_point("start").set_finish_point(["slow", "boom"])
    started = time.monotonic()
    with pytest.raises(NodeFailedError, match="'boom'"):
        await g.ainvoke({})
    assert cancelled.is_set() and time.monotonic() - started < 1


# -- node timeouts -----------------------------------------------------------------------------


async def test_node_timeout_cancels_the_attempt_and_retries() -> None:
    """An async node over its timeout is cancelled (it sees CancelledError), the attempt fails
    with a retryable CallTimeoutError and the next attempt runs."""
    cancellations: list[int] = []
    calls: list[int] = []

    async def hangs_once(state: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancellations.append(1)
                raise
        return {"ok": len(calls)}

    state = await single(hangs_once, timeout=0.05).ainvoke({})
    assert state["ok"] == 2 and cancellations == [1]


@DRIVERS
async def test_node_timing_out_every_attempt_fails_with_call_timeout(run: Run) -> None:
    """A node timing out on every attempt fails with NodeFailedError caused by
    CallTimeoutError naming the node, each attempt cancelled."""
    cancellations: list[int] = []

    async def hangs(state: Any) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancellations.append(1)
            raise

    with pytest.raises(NodeFailedError) as info:
        await run(single(hangs, timeout=0.03, retry=RetryPolicy(max_attempts=2)))
    cause = info.value.__cause__
    assert isinstance(cause, CallTimeoutError) and cause.retryable
    assert "node 'x' attempt 2" in str(cause) and cause.timeout == 0.03
    assert cancellations == [1, 1]


async def test_sync_node_with_timeout_runs_in_a_thread_and_times_out() -> None:
    """A plain sync node with a timeout runs in a worker thread; the run stops waiting for it
    after the timeout."""
    threads: list[str] = []
    release = threading.Event()

    def stuck(state: Any) -> None:
        threads.append(threading.current_thread().name)
        release.wait(1)

    g = single(stuck, timeout=0.05, retry=RetryPolicy.none())
    assert not g.is_sync
    started = time.monotonic()
    try:
        with pytest.raises(NodeFailedError) as info:
            await g.ainvoke({})
    finally:
        release.set()
    assert isinstance(info.value.__cause__, CallTimeoutError)
    assert time.monotonic() - started < 0.5
    assert threads and threads[0] != threading.current_thread().name


# -- the run's timeout -------------------------------------------------------------------------


async def test_run_timeout_cancels_running_nodes_and_keeps_partial_state() -> None:
    """A run over its timeout fails with RunTimeoutError carrying the state so far; the node
    still running is cancelled."""
    cancelled = asyncio.Event()

    async def slow(state: Any) -> dict[str, Any]:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"slow": True}

    g = Graph("g", timeout=0.1)
    g.add_node("fast", lambda s: {"fast": True}).add_node("slow", slow)
    g.add_edge("fast", "slow").set_entry_point("fast").set_finish_point("slow")
    with pytest.raises(RunTimeoutError) as info:
        await g.ainvoke({"input": 1})
    err = info.value
    assert err.state == {"input": 1, "fast": True}
    assert err.graph == "g" and err.timeout == 0.1 and "timeout of 0.1 s" in str(err)
    assert err.node == "slow" and err.running == ("slow",) and "node 'slow' was running" in str(err)
    assert cancelled.is_set()


async def test_orchestrator_graph_without_run_timeout() -> None:
    """create_graph(timeout=None) turns the whole-run limit off instead of taking the default."""
    orch = Orchestrator(graph_timeout=0.05)

    async def slow(state: Any) -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {"done": True}

    for timeout, fails in ((None, False), (0.05, True)):
        g = orch.create_graph(f"g{fails}", timeout=timeout)
        g.add_node("slow", slow).set_entry_point("slow").set_finish_point("slow")
        if fails:
            with pytest.raises(RunTimeoutError):
                await g.ainvoke({})
        else:
            assert (await g.ainvoke({}))["done"] is True


def test_run_timeout_of_a_sync_graph_is_checked_between_nodes() -> None:
    """A sync graph over its timeout stops before the next node, with the partial state."""
    ran: list[str] = []

    def slow(state: Any) -> dict[str, Any]:
        ran.append("slow")
        time.sleep(0.15)
        return {"slow": True}

    g = Graph("g", timeout=0.1)
    g.add_node("fast", lambda s: {"fast": True}).add_node("slow", slow)
    g.add_node("next", lambda s: ran.append("next"))
    g.add_edge("fast", "slow").add_edge("slow", "next")
    g.set_entry_point("fast").set_finish_point("next")
    with pytest.raises(RunTimeoutError) as info:
        g.invoke({})
    assert info.value.state == {"fast": True, "slow": True}
    assert ran == ["slow"]


# -- circuit breakers --------------------------------------------------------------------------


@DRIVERS
async def test_breaker_opens_after_failures_across_runs(run: Run) -> None:
    """A breaker shared by runs opens after failure_threshold failures; then the node is not
    called and the run fails with CircuitOpenError as the cause; after the recovery timeout a
    successful probe closes it."""
    clock = FakeClock()
    breaker = CircuitBreaker("dep", failure_threshold=3, recovery_timeout=30, clock=clock)
    node = Flaky(3)
    g = single(node, retry=RetryPolicy.none(), breaker=breaker)
    for _ in range(3):
        with pytest.raises(NodeFailedError) as info:
            await run(g)
        assert isinstance(info.value.__cause__, ConnectionError)
    assert breaker.state is CircuitState.OPEN and node.calls == 3
    with pytest.raises(NodeFailedError) as info:
        await run(g)
    assert isinstance(info.value.__cause__, CircuitOpenError)
    assert info.value.__cause__.name == "dep" and node.calls == 3
    clock.advance(30)
    assert (await run(g))["done"] == 4
    assert breaker.state is CircuitState.CLOSED


async def test_retries_count_towards_the_breaker() -> None:
    """Each failed attempt is a breaker failure, so one run's retries can open it; further
    attempts are rejected without calling the node."""
    breaker = CircuitBreaker("dep", failure_threshold=2, clock=FakeClock())
    node = Flaky(10)
    with pytest.raises(NodeFailedError) as info:
        await single(node, retry=RetryPolicy(max_attempts=4), breaker=breaker).ainvoke({})
    assert node.calls == 2 and info.value.attempt == 4
    assert isinstance(info.value.__cause__, CircuitOpenError)


def test_breaker_given_by_name_must_exist() -> None:
    """A breaker named in add_node but never registered is a compile-time problem."""
    from belugaflow import SpecError

    g = single(Flaky(0), breaker="missing")
    with pytest.raises(SpecError, match="no circuit breaker named 'missing'"):
        g.compile()


# -- events ------------------------------------------------------------------------------------


def retrying_graph(hooks: list[Any] | None = None) -> tuple[Graph, Flaky]:
    node = Flaky(1, key="a")
    g = Graph("g", retry=RetryPolicy(max_attempts=3), hooks=hooks or [])
    g.add_node("a", node).add_node("b", lambda s: {"b": 2}).add_node("c", lambda s: None)
    g.add_node("d", lambda s: {"d": 4})
    g.add_edge("a", "b").add_conditional_edges("b", lambda s: "c", ["c", "d"])
    return g.set_entry_point("a").set_finish_point(["c", "d"]), node


EXPECTED = [
    (EventKind.RUN_STARTED, None, 0, None),
    (EventKind.NODE_STARTED, "a", 1, None),
    (EventKind.NODE_RETRY_SCHEDULED, "a", 1, None),
    (EventKind.NODE_STARTED, "a", 2, None),
    (EventKind.NODE_COMPLETED, "a", 2, {"a": 2}),
    (EventKind.NODE_STARTED, "b", 1, None),
    (EventKind.NODE_COMPLETED, "b", 1, {"b": 2}),
    (EventKind.NODE_SKIPPED, "d", 0, None),
    (EventKind.NODE_STARTED, "c", 1, None),
    (EventKind.NODE_COMPLETED, "c", 1, None),
    (EventKind.RUN_COMPLETED, None, 0, None),
]


def summary(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(e.kind, e.node, e.attempt, e.update) for e in events]


def check_events(events: list[Event]) -> None:
    assert summary(events) == EXPECTED
    assert all(e.graph == "g" for e in events)
    assert events[0].state == {}
    assert events[-1].state == {"a": 2, "b": 2}
    retry = events[2]
    assert isinstance(retry.error, ConnectionError) and retry.delay == 0.0
    assert retry.name == "belugaflow.node.retry_scheduled"


async def test_astream_yields_every_event_in_order() -> None:
    """astream() yields run start, node start/retry/completion (with the update), skips and
    the run's completion with the final state, in order."""
    g, _ = retrying_graph()
    check_events([e async for e in g.astream({})])


def test_stream_from_sync_code_yields_the_same_events() -> None:
    """stream() yields the same sequence from sync code."""
    g, _ = retrying_graph()
    check_events(list(g.stream({})))


@DRIVERS
async def test_hooks_receive_the_same_events_as_stream(run: Run) -> None:
    """Hooks given to the graph receive the same events on the sync and async drivers."""
    events: list[Event] = []
    g, _ = retrying_graph(hooks=[events.append])
    await run(g)
    check_events(events)


async def test_failed_run_streams_failure_events_then_raises() -> None:
    """A failing run yields node.failed and run.failed (with partial state), then astream
    raises the NodeFailedError."""
    g = single(Flaky(10), retry=RetryPolicy(max_attempts=2))
    events: list[Event] = []
    with pytest.raises(NodeFailedError):
        async for event in g.astream({}):
            events.append(event)
    kinds = [(e.kind, e.node, e.attempt) for e in events]
    assert kinds == [
        (EventKind.RUN_STARTED, None, 0),
        (EventKind.NODE_STARTED, "first", 1),
        (EventKind.NODE_COMPLETED, "first", 1),
        (EventKind.NODE_STARTED, "x", 1),
        (EventKind.NODE_RETRY_SCHEDULED, "x", 1),
        (EventKind.NODE_STARTED, "x", 2),
        (EventKind.NODE_FAILED, "x", 2),
        (EventKind.RUN_FAILED, None, 0),
    ]
    assert isinstance(events[-2].error, NodeFailedError)
    assert isinstance(events[-1].error, NodeFailedError)
    assert events[-1].state == {"first": True}


def test_a_broken_hook_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises is logged and ignored."""

    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    g, _ = retrying_graph(hooks=[broken])
    assert g.invoke({}) == {"a": 2, "b": 2}
    assert "event hook" in caplog.text


@DRIVERS
async def test_failing_reducer_fails_the_run_with_context(run: Run) -> None:
    """A reducer that raises fails the run with a RunError naming the node and the key, with
    the partial state and a run.failed event."""
    events: list[Event] = []
    g = Graph("g", retry=RetryPolicy.none(), hooks=[events.append])
    g.set_reducer("total", "add")
    g.add_node("a", lambda s: {"total": 1}).add_node("b", lambda s: {"total": "x"})
    g.add_edge("a", "b").set_entry_point("a").set_finish_point("b")
    with pytest.raises(RunError) as info:
        await run(g)
    err = info.value
    assert err.node == "b" and "'total'" in str(err)
    assert err.state == {"total": 1}
    assert events[-1].kind is EventKind.RUN_FAILED


def test_leaving_stream_early_cancels_the_run() -> None:
    """Closing a stream() generator early cancels the run: the running node is cancelled and
    later nodes never start."""
    cancelled = threading.Event()
    ran: list[str] = []

    async def slow(state: Any) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    g = Graph("g")
    g.add_node("slow", slow).add_node("after", lambda s: ran.append("after"))
    g.add_edge("slow", "after").set_entry_point("slow").set_finish_point("after")
    events = g.stream({})
    assert next(events).kind is EventKind.RUN_STARTED
    started = time.monotonic()
    events.close()
    assert cancelled.is_set() and ran == []
    assert time.monotonic() - started < 1


async def test_leaving_astream_early_cancels_the_run() -> None:
    """Closing astream early cancels the run's running nodes before aclose() returns, as
    closing stream() does."""
    cancelled = asyncio.Event()

    async def slow(state: Any) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    g = Graph("g")
    g.add_node("slow", slow).set_entry_point("slow").set_finish_point("slow")
    stream = g.astream({})
    async for event in stream:
        if event.kind is EventKind.NODE_STARTED:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert cancelled.is_set()
