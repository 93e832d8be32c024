"""One definition, two engines: the same graphs give the same final state, the same errors and
the same events in process and on a real Temporal server (``GraphWorkflow``, every node and
router an activity, the worker in this process with the test's hooks)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from temporalio.client import Client
from tests.graph.test_properties import GenGraph, Tracker, build, gen_graphs, reference

from belugaflow import (
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    Event,
    EventKind,
    Graph,
    MaxStepsExceededError,
    NodeFailedError,
    NonRetryableError,
    RetryPolicy,
    RunError,
    StateConflictError,
)
from belugaflow.temporal._engine import TemporalEngine, graph_worker

Shape = tuple[str, str | None, int]
"""An event without its payload: (name, node, attempt)."""

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01)


class Engine:
    """Runs graphs on one engine and collects their events; ``graph()`` builds a graph whose
    events reach :attr:`events` on this engine."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.events: list[Event] = []
        self.workflow_id: str | None = None

    def graph(self, name: str, **options: Any) -> Graph:
        hooks = [self.events.append] if self.name == "local" else []
        return Graph(name, hooks=hooks, **options)

    async def run(self, graph: Graph, state: dict[str, Any]) -> dict[str, Any]:
        if self.name == "local":
            return await graph.ainvoke(state)
        queue = f"conformance-{uuid.uuid4().hex[:8]}"
        self.workflow_id = f"{graph.name}-{uuid.uuid4().hex[:8]}"
        worker = graph_worker(
            self.client,
            task_queue=queue,
            registry=graph.registry,
            breakers=graph.breakers,
            hooks=[self.events.append],
        )
        async with worker:
            durable = TemporalEngine(self.client, task_queue=queue)
            return await durable.run(graph, state, id=self.workflow_id)


@pytest.fixture(params=["local", "temporal"])
def engine(request: pytest.FixtureRequest, temporal_client: Client) -> Engine:
    """Each conformance test runs once per engine."""
    return Engine(request.param, temporal_client)


def shapes(events: list[Event]) -> list[Shape]:
    return [(event.name.removeprefix("belugaflow."), event.node, event.attempt) for event in events]


def node_run(node: str, attempt: int = 1) -> list[Shape]:
    return [("node.started", node, attempt), ("node.completed", node, attempt)]


def order_graph(engine: Engine) -> Graph:
    graph = engine.graph("order", retry=FAST)
    graph.add_node("validate", lambda s: {"valid": True}, short=True)  # a local activity
    graph.add_node("check_inventory", lambda s: {"in_stock": s["product_id"] != "sold-out"})
    graph.add_node("process_payment", lambda s: {"payment_id": f"pay-{s['order_id']}"})
    graph.add_node("fulfill", lambda s: {"fulfillment_id": f"ful-{s['order_id']}"})
    graph.add_node(
        "notify", lambda s: {"status": "completed" if "payment_id" in s else "out_of_stock"}
    )
    graph.add_edge("validate", "check_inventory")
    graph.add_conditional_edges(
        "check_inventory",
        lambda s: "in_stock" if s["in_stock"] else "out_of_stock",
        {"in_stock": "process_payment", "out_of_stock": "notify"},
    )
    graph.add_edge("process_payment", "fulfill").add_edge("fulfill", "notify")
    return graph.set_entry_point("validate").set_finish_point("notify")


def single(engine: Engine, fn: Callable[[Any], Any], **options: Any) -> Graph:
    """A graph of one node ``n`` calling ``fn``."""
    retry = options.pop("retry", FAST)
    graph = engine.graph("single", retry=retry)
    return graph.add_node("n", fn, **options).set_entry_point("n").set_finish_point("n")


# -- results -------------------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["prod-1", "sold-out"])
async def test_order_flow(engine: Engine, product: str) -> None:
    """The order flow completes, or ends out of stock with payment and fulfilment skipped."""
    state = await engine.run(order_graph(engine), {"order_id": "o1", "product_id": product})
    if product == "prod-1":
        assert state["status"] == "completed" and state["payment_id"] == "pay-o1"
    else:
        assert state["status"] == "out_of_stock" and "payment_id" not in state


async def test_fan_out_and_join_with_a_reducer(engine: Engine) -> None:
    """Parallel async branches append to one key; the join sees all of them."""
    graph = engine.graph("fan", max_workers=4)
    graph.add_node("start", lambda s: None)

    def branch(i: int) -> Callable[[Any], Any]:
        async def node(state: Any) -> dict[str, Any]:
            return {"values": [i]}

        return node

    for i in range(6):
        graph.add_node(f"b{i}", branch(i)).add_edge("start", f"b{i}").add_edge(f"b{i}", "join")
    graph.add_node("join", lambda s: {"total": sum(s["values"])})
    graph.set_reducer("values", "append").set_entry_point("start").set_finish_point("join")
    state = await engine.run(graph, {})
    assert sorted(state["values"]) == list(range(6)) and state["total"] == 15
    seen = shapes(engine.events)
    assert seen[0] == ("run.started", None, 0) and seen[-1] == ("run.completed", None, 0)
    assert Counter(seen[1:-1]) == Counter(
        shape
        for node in ["start", *(f"b{i}" for i in range(6)), "join"]
        for shape in node_run(node)
    )


async def test_loop_until_the_router_exits(engine: Engine) -> None:
    """A loop runs its body until its router takes the exit route."""
    graph = engine.graph("draft", max_steps=20)
    graph.add_node("write", lambda s: {"drafts": s.get("drafts", 0) + 1})
    graph.add_node("review", lambda s: {"ok": s["drafts"] >= 3})
    graph.add_node("publish", lambda s: {"published": True})
    graph.add_edge("write", "review")
    graph.add_conditional_edges(
        "review", lambda s: "done" if s["ok"] else "again", {"again": "write", "done": "publish"}
    )
    graph.set_entry_point("write").set_finish_point("publish")
    assert await engine.run(graph, {}) == {"drafts": 3, "ok": True, "published": True}


# -- events --------------------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["prod-1", "sold-out"])
async def test_the_same_events_in_the_same_order(engine: Engine, product: str) -> None:
    """The order flow emits the same sequence of events on both engines, all with one run id
    (the workflow id on Temporal), timestamps, and durations on completions."""
    await engine.run(order_graph(engine), {"order_id": "o1", "product_id": product})
    if product == "prod-1":
        middle = ["validate", "check_inventory", "process_payment", "fulfill", "notify"]
        expected = [shape for node in middle for shape in node_run(node)]
    else:
        expected = [
            *node_run("validate"),
            *node_run("check_inventory"),
            ("node.skipped", "process_payment", 0),
            ("node.skipped", "fulfill", 0),
            *node_run("notify"),
        ]
    expected = [("run.started", None, 0), *expected, ("run.completed", None, 0)]
    assert shapes(engine.events) == expected
    run_ids = {event.run_id for event in engine.events}
    assert len(run_ids) == 1 and all(event.graph == "order" for event in engine.events)
    if engine.workflow_id is not None:
        assert run_ids == {engine.workflow_id}
    times = [event.time for event in engine.events]
    assert all(t > 1e9 for t in times)
    done = [e for e in engine.events if e.kind is EventKind.NODE_COMPLETED]
    assert all(e.duration is not None and e.duration >= 0 for e in done)
    assert done[0].update == {"valid": True}
    assert engine.events[-1].state is not None and engine.events[-1].state["order_id"] == "o1"


async def test_retries_are_counted_the_same(engine: Engine) -> None:
    """A node that fails twice then succeeds: two retry events, then completion on attempt 3,
    on both engines; the events carry the error and the delay."""
    calls: list[int] = []

    def flaky(state: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return {"attempts": len(calls)}

    graph = single(engine, flaky, retry=RetryPolicy(max_attempts=5, initial_interval=0.01))
    assert (await engine.run(graph, {}))["attempts"] == 3
    assert shapes(engine.events)[1:-1] == [
        ("node.started", "n", 1),
        ("node.retry_scheduled", "n", 1),
        ("node.started", "n", 2),
        ("node.retry_scheduled", "n", 2),
        *node_run("n", 3),
    ]
    retries = [e for e in engine.events if e.kind is EventKind.NODE_RETRY_SCHEDULED]
    assert all(isinstance(e.error, ConnectionError) for e in retries)
    assert [round(e.delay or 0, 2) for e in retries] == pytest.approx([0.01, 0.02], abs=0.005)


async def test_non_retryable_error_fails_at_once(engine: Engine) -> None:
    """A non-retryable error fails the run on the first attempt with NodeFailedError, naming
    the node, the attempt and the error's type and message, on both engines."""
    calls: list[int] = []

    def decline(state: Any) -> None:
        calls.append(1)
        raise NonRetryableError("card declined")

    graph = single(engine, decline, retry=RetryPolicy(max_attempts=5, initial_interval=0.01))
    with pytest.raises(NodeFailedError) as caught:
        await engine.run(graph, {})
    error = caught.value
    assert len(calls) == 1
    assert (error.node, error.attempt, error.max_attempts) == ("n", 1, 5)
    assert "node 'n' failed on attempt 1/5 (not retrying): NonRetryableError: card declined" in str(
        error
    )
    assert "card declined" in str(error.__cause__)
    assert shapes(engine.events)[1:] == [
        ("node.started", "n", 1),
        ("node.failed", "n", 1),
        ("run.failed", None, 0),
    ]


async def test_attempts_used_up_fail_with_the_last_error(engine: Engine) -> None:
    """A node that always fails: three attempts, then NodeFailedError 3/3 with the last error."""

    def down(state: Any) -> None:
        raise ConnectionError("gateway unreachable")

    with pytest.raises(NodeFailedError, match=r"attempt 3/3 .*ConnectionError: gateway") as caught:
        await engine.run(single(engine, down), {})
    assert caught.value.attempt == 3
    kinds = [shape[0] for shape in shapes(engine.events)]
    assert kinds.count("node.retry_scheduled") == 2 and kinds[-2:] == ["node.failed", "run.failed"]


async def test_parallel_writes_without_reducer_fail(engine: Engine) -> None:
    """Two parallel writes to one key without a reducer fail the run with StateConflictError,
    naming the key and the nodes, on both engines."""
    graph = engine.graph("conflict")
    graph.add_node("a", lambda s: {"x": 1}).add_node("b", lambda s: {"x": 2})
    graph.set_entry_point(["a", "b"]).set_finish_point(["a", "b"])
    with pytest.raises(StateConflictError, match="state key 'x'") as caught:
        await engine.run(graph, {})
    assert caught.value.key == "x" and set(caught.value.nodes) == {"a", "b"}
    assert caught.value.state["x"] in (1, 2)


async def test_max_steps_stops_a_runaway_loop(engine: Engine) -> None:
    """A loop that never exits fails with MaxStepsExceededError after max_steps loop runs."""
    graph = engine.graph("endless", max_steps=4)
    graph.add_node("spin", lambda s: {"turns": s.get("turns", 0) + 1})
    graph.add_node("out", lambda s: None)
    graph.add_conditional_edges("spin", lambda s: "again", {"again": "spin", "out": "out"})
    graph.set_entry_point("spin").set_finish_point("out")
    with pytest.raises(MaxStepsExceededError, match="max_steps=4") as caught:
        await engine.run(graph, {})
    assert caught.value.node == "spin" and caught.value.state == {"turns": 4}
    assert shapes(engine.events)[-1] == ("run.failed", None, 0)


async def test_a_timed_out_attempt_is_retried(engine: Engine) -> None:
    """A node whose first attempt overruns its timeout is retried (CallTimeoutError, retryable)
    and completes on attempt 2; always overrunning fails it after its attempts."""
    calls: list[int] = []

    async def slow_once(state: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(5)
        return {"done": True}

    assert await engine.run(single(engine, slow_once, timeout=0.3), {}) == {"done": True}
    retry = next(e for e in engine.events if e.kind is EventKind.NODE_RETRY_SCHEDULED)
    assert isinstance(retry.error, CallTimeoutError) and retry.attempt == 1

    async def always_slow(state: Any) -> None:
        await asyncio.sleep(5)

    graph = single(engine, always_slow, timeout=0.2, retry=RetryPolicy(max_attempts=2,
                   initial_interval=0.01))  # fmt: skip
    with pytest.raises(NodeFailedError, match=r"attempt 2/2.*CallTimeoutError.*timed out after"):
        await engine.run(graph, {})


async def test_an_open_breaker_fails_fast_without_calling_the_node(engine: Engine) -> None:
    """A breaker that opened after two failures rejects the third attempt without calling the
    node: two calls, then NodeFailedError caused by CircuitOpenError — on Temporal too."""
    calls: list[int] = []

    def down(state: Any) -> None:
        calls.append(1)
        raise ConnectionError("down")

    breaker = CircuitBreaker(f"dep-{uuid.uuid4().hex[:6]}", failure_threshold=2,
                             recovery_timeout=60)  # fmt: skip
    with pytest.raises(NodeFailedError, match=r"attempt 3/3.*CircuitOpenError") as caught:
        await engine.run(single(engine, down, breaker=breaker), {})
    assert len(calls) == 2 and breaker.state.value == "open"
    if engine.name == "local":
        assert isinstance(caught.value.__cause__, CircuitOpenError)


async def test_a_retry_waits_for_the_breaker_to_half_open(engine: Engine) -> None:
    """After the breaker opened, the next retry waits until it may half-open (no attempt burnt
    on a closed door): the probe succeeds and the run completes on attempt 3 with 2 calls."""
    calls: list[int] = []

    def recovers(state: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("blip")
        return {"ok": True}

    # Long enough that the second attempt finds it open even though a durable retry takes
    # about a second to be dispatched.
    breaker = CircuitBreaker(f"dep-{uuid.uuid4().hex[:6]}", failure_threshold=1,
                             recovery_timeout=3)  # fmt: skip
    assert await engine.run(single(engine, recovers, breaker=breaker), {}) == {"ok": True}
    assert len(calls) == 2 and breaker.state.value == "closed"
    retries = [e for e in engine.events if e.kind is EventKind.NODE_RETRY_SCHEDULED]
    assert [e.attempt for e in retries] == [1, 2]
    assert isinstance(retries[1].error, CircuitOpenError)
    assert 1.0 < (retries[1].delay or 0) <= 3  # the breaker's time to half-open, not 0.02 s


# -- random graphs -------------------------------------------------------------------------------


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(g=gen_graphs(kinds=("sync", "async"), loops=True))
async def test_random_graphs_match_the_reference(engine: Engine, g: GenGraph) -> None:
    """Random graphs with routes, joins and loops end in the reference interpreter's state."""
    graph = build(g, Tracker(), [], tuple(0.0 for _ in range(g.n)))
    state = await engine.run(graph, {})
    expected = reference(g).state
    assert Counter(state.pop("trace", [])) == Counter(expected.pop("trace", []))
    assert state == expected


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(g=gen_graphs(kinds=("sync", "async"), loops=True))
async def test_random_graphs_emit_the_same_events(temporal_client: Client, g: GenGraph) -> None:
    """Random graphs emit the same events on both engines, modulo the order of parallel nodes:
    the same multiset, starting with run.started and ending with run.completed."""
    local_events: list[Event] = []
    graph = build(g, Tracker(), local_events, tuple(0.0 for _ in range(g.n)))
    await graph.ainvoke({})
    durable = Engine("temporal", temporal_client)
    await durable.run(graph, {})
    local, remote = shapes(local_events), shapes(durable.events)
    assert remote[0] == local[0] == ("run.started", None, 0)
    assert remote[-1] == local[-1] == ("run.completed", None, 0)
    assert Counter(remote) == Counter(local)


async def test_a_run_error_keeps_its_type_on_temporal(engine: Engine) -> None:
    """A router error fails the run with RunError naming the router's node, on both engines."""
    graph = engine.graph("routing")
    graph.add_node("a", lambda s: None).add_node("b", lambda s: None)

    def broken(state: Any) -> str:
        raise KeyError("missing")

    graph.add_conditional_edges("a", broken, ["b"]).set_entry_point("a").set_finish_point("b")
    with pytest.raises(RunError, match="the router after node 'a' raised KeyError") as caught:
        await engine.run(graph, {})
    assert caught.value.node == "a"


async def test_running_an_id_again_returns_the_first_runs_result(temporal_client: Client) -> None:
    """``TemporalEngine.run`` with the same id after the run finished (a caller's retry) gets
    that run's result; the node, a side effect, ran once."""
    calls: list[int] = []

    def charge(state: Any) -> dict[str, Any]:
        calls.append(1)
        return {"charged": len(calls)}

    engine = Engine("temporal", temporal_client)
    graph = single(engine, charge)
    queue = f"conformance-{uuid.uuid4().hex[:8]}"
    durable = TemporalEngine(temporal_client, task_queue=queue)
    async with graph_worker(temporal_client, task_queue=queue, registry=graph.registry):
        first = await durable.run(graph, {}, id=f"once-{queue}")
        again = await durable.run(graph, {}, id=f"once-{queue}")
    assert first == again == {"charged": 1} and len(calls) == 1
