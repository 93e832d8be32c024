"""One definition, two engines: the same graphs give the same final state in process and on a
real Temporal server (``GraphWorkflow``, every node and router an activity)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from temporalio.client import Client
from tests.graph.test_properties import GenGraph, Tracker, build, gen_graphs, reference

from belugaflow import (
    Graph,
    NonRetryableError,
    RetryPolicy,
    RunError,
    StateConflictError,
)
from belugaflow.temporal._engine import TemporalEngine, graph_worker

Engine = Callable[[Graph, dict[str, Any]], Awaitable[dict[str, Any]]]


async def run_local(graph: Graph, state: dict[str, Any]) -> dict[str, Any]:
    return await graph.ainvoke(state)


@pytest.fixture(params=["local", "temporal"])
def engine(request: pytest.FixtureRequest, temporal_client: Client) -> Engine:
    """Each conformance test runs once per engine."""
    if request.param == "local":
        return run_local

    async def run_durable(graph: Graph, state: dict[str, Any]) -> dict[str, Any]:
        queue = f"conformance-{uuid.uuid4().hex[:8]}"
        worker = graph_worker(
            temporal_client, task_queue=queue, registry=graph.registry, breakers=graph.breakers
        )
        async with worker:
            return await TemporalEngine(temporal_client, task_queue=queue).run(graph, state)

    return run_durable


def order_graph() -> Graph:
    graph = Graph("order", retry=RetryPolicy(max_attempts=3, initial_interval=0.01))
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


@pytest.mark.parametrize("product", ["prod-1", "sold-out"])
async def test_order_flow(engine: Engine, product: str) -> None:
    """The order flow completes, or ends out of stock with payment and fulfilment skipped."""
    state = await engine(order_graph(), {"order_id": "o1", "product_id": product})
    if product == "prod-1":
        assert state["status"] == "completed" and state["payment_id"] == "pay-o1"
    else:
        assert state["status"] == "out_of_stock" and "payment_id" not in state


async def test_fan_out_and_join_with_a_reducer(engine: Engine) -> None:
    """Parallel async branches append to one key; the join sees all of them."""
    graph = Graph("fan", max_workers=4)
    graph.add_node("start", lambda s: None)

    def branch(i: int) -> Callable[[Any], Awaitable[dict[str, Any]]]:
        async def node(state: Any) -> dict[str, Any]:
            return {"values": [i]}

        return node

    for i in range(6):
        graph.add_node(f"b{i}", branch(i)).add_edge("start", f"b{i}").add_edge(f"b{i}", "join")
    graph.add_node("join", lambda s: {"total": sum(s["values"])})
    graph.set_reducer("values", "append").set_entry_point("start").set_finish_point("join")
    state = await engine(graph, {})
    assert sorted(state["values"]) == list(range(6)) and state["total"] == 15


async def test_loop_until_the_router_exits(engine: Engine) -> None:
    """A loop runs its body until its router takes the exit route."""
    graph = Graph("draft", max_steps=20)
    graph.add_node("write", lambda s: {"drafts": s.get("drafts", 0) + 1})
    graph.add_node("review", lambda s: {"ok": s["drafts"] >= 3})
    graph.add_node("publish", lambda s: {"published": True})
    graph.add_edge("write", "review")
    graph.add_conditional_edges(
        "review", lambda s: "done" if s["ok"] else "again", {"again": "write", "done": "publish"}
    )
    graph.set_entry_point("write").set_finish_point("publish")
    assert await engine(graph, {}) == {"drafts": 3, "ok": True, "published": True}


async def test_retryable_error_is_retried_per_policy(engine: Engine) -> None:
    """A node that fails twice then succeeds completes on its third attempt."""
    calls: list[int] = []

    def flaky(state: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return {"attempts": len(calls)}

    graph = Graph("flaky", retry=RetryPolicy(max_attempts=5, initial_interval=0.01))
    graph.add_node("flaky", flaky).set_entry_point("flaky").set_finish_point("flaky")
    assert (await engine(graph, {}))["attempts"] == 3


async def test_non_retryable_error_fails_at_once(engine: Engine) -> None:
    """A non-retryable error fails the run on the first attempt, with its message visible."""
    calls: list[int] = []

    def decline(state: Any) -> None:
        calls.append(1)
        raise NonRetryableError("card declined")

    graph = Graph("pay", retry=RetryPolicy(max_attempts=5, initial_interval=0.01))
    graph.add_node("charge", decline).set_entry_point("charge").set_finish_point("charge")
    with pytest.raises(RunError, match="card declined"):
        await engine(graph, {})
    assert len(calls) == 1


async def test_parallel_writes_without_reducer_fail(engine: Engine) -> None:
    """Two parallel writes to one key without a reducer fail the run, naming the key."""
    graph = Graph("conflict")
    graph.add_node("a", lambda s: {"x": 1}).add_node("b", lambda s: {"x": 2})
    graph.set_entry_point(["a", "b"]).set_finish_point(["a", "b"])
    with pytest.raises(RunError, match="state key 'x'") as info:
        await engine(graph, {})
    if not isinstance(info.value, StateConflictError):  # durable: the type travels by name
        assert "StateConflictError" in str(info.value)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(g=gen_graphs(kinds=("sync", "async"), loops=True))
async def test_random_graphs_match_the_reference(engine: Engine, g: GenGraph) -> None:
    """Random graphs with routes, joins and loops end in the reference interpreter's state."""
    graph = build(g, Tracker(), [], tuple(0.0 for _ in range(g.n)))
    state = await engine(graph, {})
    expected = reference(g).state
    assert Counter(state.pop("trace", [])) == Counter(expected.pop("trace", []))
    assert state == expected
