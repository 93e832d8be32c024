"""Graphs that wait for people, park on failure and compensate — the same on both engines,
driven through the same handle (``LocalRun`` in process, ``DurableRun`` on a real Temporal
server, the graph started by its name)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio.client import Client
from typing_extensions import TypedDict

from belugaflow import (
    Graph,
    InputError,
    NodeFailedError,
    Registry,
    RetryableError,
    RetryPolicy,
    RunCancelledError,
    RunHandle,
    WaitTimeoutError,
)
from belugaflow.temporal import TemporalEngine, graph_worker

FAST = RetryPolicy(max_attempts=2, initial_interval=0.01)


class Review(TypedDict):
    verdict: str
    note: str


class Runner:
    """Starts graphs on one engine; durably, a worker serves the graph's registry meanwhile."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.queue = f"waits-{uuid.uuid4().hex[:8]}"
        self.registry = Registry()
        """The registry of every graph a test builds: its worker serves them all by name."""
        self._workers: list[Any] = []

    def graph(self, name: str, **options: Any) -> Graph:
        return Graph(name, registry=self.registry, **options)

    async def start(self, graph: Graph, state: dict[str, Any]) -> RunHandle:
        if self.name == "local":
            return await graph.start(state)
        compiled = graph.compile()
        if not self._workers:
            worker = graph_worker(self.client, task_queue=self.queue, registry=self.registry)
            await worker.__aenter__()
            self._workers.append(worker)
        engine = TemporalEngine(self.client, task_queue=self.queue, registry=self.registry)
        return await engine.start(compiled, state, id=f"{graph.name}-{uuid.uuid4().hex[:8]}")

    async def close(self) -> None:
        for worker in self._workers:
            await worker.__aexit__(None, None, None)


@pytest.fixture(params=["local", "temporal"])
async def runner(request: pytest.FixtureRequest, temporal_client: Client) -> AsyncIterator[Runner]:
    runner = Runner(request.param, temporal_client)
    try:
        yield runner
    finally:
        await runner.close()


async def eventually(handle: RunHandle, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The run's progress, once ``check`` holds for it (within 10 s)."""
    async with asyncio.timeout(10):
        while True:
            progress: dict[str, Any] = await handle.query("progress")
            if check(progress):
                return progress
            await asyncio.sleep(0.02)


def review_graph(
    runner: Runner, name: str, undone: list[str], *, timeout: float | None = 30.0
) -> Graph:
    graph = runner.graph(name, retry=FAST)
    graph.add_node("reserve", lambda s: {"reserved": True}, compensate=lambda s: undone.append("r"))
    graph.add_wait(
        "await_review",
        signal="review",
        timeout=timeout,
        on_timeout="expired" if timeout else None,
        schema=Review,
    )
    graph.add_node("approved", lambda s: {"status": "approved"})
    graph.add_node("rejected", lambda s: {"status": "rejected"})
    graph.add_edge("reserve", "await_review")
    graph.add_conditional_edges(
        "await_review",
        lambda s: s["review"]["verdict"],
        {"approve": "approved", "reject": "rejected"},
    )
    if timeout:
        graph.add_node("expired", lambda s: {"status": "expired"})
    return graph.set_entry_point("reserve").set_finish_point(["approved", "rejected"])


def waiting(progress: dict[str, Any]) -> bool:
    return progress.get("status") == "waiting"


@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_a_wait_takes_the_signal_into_the_state_and_routes_on_it(
    runner: Runner, verdict: str
) -> None:
    undone: list[str] = []
    handle = await runner.start(review_graph(runner, f"review-{verdict}", undone), {"order": 1})
    progress = await eventually(handle, waiting)
    assert progress["completed"] == ["reserve"] and progress["running"] == []
    assert progress["waiting"][0]["node"] == "await_review"
    assert progress["waiting"][0]["signal"] == "review" and progress["waiting"][0]["until"]
    await handle.signal("review", {"verdict": verdict, "note": "looked fine"})
    state = await handle.result()
    assert (
        state["status"] == verdict.rstrip("e") + "ed" and state["review"]["note"] == "looked fine"
    )
    assert undone == []


async def test_a_wait_times_out_onto_its_route(runner: Runner) -> None:
    handle = await runner.start(review_graph(runner, "review-expires", [], timeout=0.5), {})
    assert (await handle.result())["status"] == "expired"


async def test_a_wait_without_on_timeout_fails_the_run(runner: Runner) -> None:
    graph = runner.graph("wait-fails")
    graph.add_wait("w", timeout=0.3).set_entry_point("w").set_finish_point("w")
    handle = await runner.start(graph, {})
    with pytest.raises(WaitTimeoutError, match=r"got no 'w' signal within 0\.3 s"):
        await handle.result()


async def test_a_bad_signal_is_refused_by_the_handle_and_dropped_by_the_run(
    runner: Runner,
) -> None:
    """The handle checks before sending; a client that does not (any Temporal client) gets
    its value dropped and recorded, and the run keeps waiting."""
    handle = await runner.start(review_graph(runner, "review-bad", []), {})
    await eventually(handle, waiting)
    with pytest.raises(InputError, match="verdict: missing") as refused:
        await handle.signal("review", {"note": "no verdict"})
    assert refused.value.problems == ["verdict: missing (required)"]
    with pytest.raises(InputError, match="takes no such signal"):
        await handle.signal("reveiw", {})
    if runner.name == "temporal":
        await handle.handle.signal("review", {"verdict": 3})  # type: ignore[attr-defined]
    else:
        handle._board.signal("review", {"verdict": 3})  # type: ignore[attr-defined]
    progress = await eventually(handle, lambda p: bool(p["dropped_signals"]))
    assert progress["status"] == "waiting"
    assert progress["dropped_signals"] == [
        "signal 'review': note: missing (required)",
        "signal 'review': verdict: 3 is not of type 'string'",
    ]
    await handle.signal("review", {"verdict": "approve", "note": ""})
    assert (await handle.result())["status"] == "approved"


async def test_an_update_is_refused_to_its_sender(runner: Runner) -> None:
    handle = await runner.start(review_graph(runner, "review-update", []), {})
    await eventually(handle, waiting)
    with pytest.raises(InputError, match="node: 'reserve' is not parked"):
        await handle.resolve("reserve", "retry")
    progress = await handle.update("review", {"verdict": "reject", "note": "too big"})
    assert progress["graph"] == "review-update"
    assert (await handle.result())["status"] == "rejected"


async def test_cancel_runs_the_compensation_of_what_started(runner: Runner) -> None:
    undone: list[str] = []
    handle = await runner.start(review_graph(runner, "review-cancel", undone), {})
    await eventually(handle, waiting)
    await handle.cancel()
    with pytest.raises(RunCancelledError):
        await handle.result()
    if runner.name == "local":
        assert undone == ["r"]
    else:  # the compensation ran in the worker, in this process
        assert undone == ["r"]


class Flaky:
    """A dependency that is down until ``up`` is set; counts the effects that landed."""

    def __init__(self) -> None:
        self.up = False
        self.effects = 0

    def __call__(self, state: Any) -> dict[str, Any]:
        if not self.up:
            raise RetryableError("payment gateway is down")
        self.effects += 1
        return {"paid": True}


def parking_graph(runner: Runner, name: str, dependency: Flaky) -> Graph:
    graph = runner.graph(name, retry=FAST)
    graph.add_node("pay", dependency, on_failure="park")
    graph.add_node("ship", lambda s: {"shipped": s.get("paid", False)})
    graph.add_edge("pay", "ship")
    return graph.set_entry_point("pay").set_finish_point("ship")


def parked(progress: dict[str, Any]) -> bool:
    return progress.get("status") == "parked"


async def test_a_parked_node_is_retried_by_an_operator(runner: Runner) -> None:
    dependency = Flaky()
    handle = await runner.start(parking_graph(runner, "park-retry", dependency), {})
    progress = await eventually(handle, parked)
    [node] = progress["parked"]
    assert node["node"] == "pay" and node["attempts"] == 2
    assert "payment gateway is down" in node["error"]
    dependency.up = True
    await handle.resolve("pay", "retry")
    state = await handle.result()
    assert state == {"paid": True, "shipped": True}
    assert dependency.effects == 1


async def test_a_parked_node_is_skipped_or_aborted(runner: Runner) -> None:
    handle = await runner.start(parking_graph(runner, "park-skip", Flaky()), {})
    await eventually(handle, parked)
    await handle.resolve(None, "skip", {"paid": "manually"})
    assert (await handle.result())["shipped"] == "manually"

    handle = await runner.start(parking_graph(runner, "park-abort", Flaky()), {})
    await eventually(handle, parked)
    await handle.resolve("pay", "abort")
    with pytest.raises(NodeFailedError, match="payment gateway is down"):
        await handle.result()


def test_a_graph_that_waits_cannot_be_a_sub_graph() -> None:
    inner = Graph("inner")
    inner.add_wait("w", timeout=1).set_entry_point("w").set_finish_point("w")
    with pytest.raises(ValueError, match="waits for signals or parks failed nodes"):
        Graph("outer").add_node("inner", inner)
