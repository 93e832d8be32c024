"""Graphs and chains as nodes: a sub-graph works on a copy of the state; its changes merge back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from belugaflow import (
    Chain,
    CompiledGraph,
    Graph,
    GraphSpec,
    NodeFailedError,
    RetryPolicy,
)

NO_RETRY = RetryPolicy.none()


def inner_tax() -> Graph:
    inner = Graph("tax", retry=NO_RETRY)
    inner.add_node("rate", lambda s: {"rate": 0.2})
    inner.add_node("tax", lambda s: {"tax": s["net"] * s["rate"]})
    inner.add_edge("rate", "tax")
    return inner.set_entry_point("rate").set_finish_point("tax")


def outer_with(node: Any) -> Graph:
    outer = Graph("invoice", retry=NO_RETRY)
    outer.add_node("net", lambda s: {"net": 100.0})
    outer.add_node("tax", node)
    outer.add_node("gross", lambda s: {"gross": s["net"] + s["tax"]})
    outer.add_edge("net", "tax").add_edge("tax", "gross")
    return outer.set_entry_point("net").set_finish_point("gross")


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_subgraph_changes_merge_back(asynchronous: bool) -> None:
    """A sub-graph node sees the parent's state; the keys it wrote become the node's update."""
    outer = outer_with(inner_tax())
    assert outer.is_sync
    state = await outer.ainvoke({}) if asynchronous else outer.invoke({})
    assert state == {"net": 100.0, "rate": 0.2, "tax": 20.0, "gross": 120.0}


async def test_subgraph_with_async_nodes_in_a_sync_parent() -> None:
    """A sub-graph with async nodes makes its parent async; invoke() and ainvoke() both work."""

    async def rate(state: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"rate": 0.5}

    inner = Graph("tax", retry=NO_RETRY)
    inner.add_node("rate", rate).add_node("tax", lambda s: {"tax": s["net"] * s["rate"]})
    inner.add_edge("rate", "tax").set_entry_point("rate").set_finish_point("tax")
    outer = outer_with(inner)
    assert not outer.is_sync
    assert (await outer.ainvoke({}))["gross"] == 150.0
    assert (await asyncio.to_thread(outer.invoke, {}))["gross"] == 150.0


async def test_subgraph_works_on_a_copy_of_the_state() -> None:
    """A sub-graph's intermediate writes are invisible to the parent until it completes."""
    seen: list[Any] = []

    async def peek(state: Any) -> None:
        await asyncio.sleep(0.02)
        seen.append(state.get("inner"))

    async def write(state: Any) -> dict[str, Any]:
        return {"inner": 1}

    async def wait(state: Any) -> None:
        await asyncio.sleep(0.05)

    inner = Graph("inner", retry=NO_RETRY)
    inner.add_node("write", write).add_node("wait", wait).add_edge("write", "wait")
    inner.set_entry_point("write").set_finish_point("wait")
    outer = Graph("outer", retry=NO_RETRY)
    outer.add_node("start", lambda s: None).add_node("sub", inner).add_node("peek", peek)
    outer.add_edge("start", "sub").add_edge("start", "peek")
    outer.set_entry_point("start").set_finish_point(["sub", "peek"])
    state = await outer.ainvoke({})
    assert seen == [None] and state["inner"] == 1


def test_failing_subgraph_node_fails_the_parent_node() -> None:
    """A node failing inside a sub-graph fails the parent's node; the inner error is the
    cause."""

    def broken(state: Any) -> None:
        raise ValueError("inner boom")

    inner = Graph("inner", retry=NO_RETRY)
    inner.add_node("broken", broken).set_entry_point("broken").set_finish_point("broken")
    outer = outer_with(inner)
    with pytest.raises(NodeFailedError) as info:
        outer.invoke({})
    err = info.value
    assert (err.graph, err.node) == ("invoice", "tax")
    inner_error = err.__cause__
    assert isinstance(inner_error, NodeFailedError)
    assert (inner_error.graph, inner_error.node) == ("inner", "broken")
    assert isinstance(inner_error.__cause__, ValueError)
    assert err.state == {"net": 100.0}


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_chain_as_a_node(asynchronous: bool) -> None:
    """A chain node gets the state; its last step's output is the node's update."""

    async def async_tax(s: Any) -> dict[str, Any]:
        return {"tax": s["net"] * 0.1}

    def sync_tax(s: Any) -> dict[str, Any]:
        return {"tax": s["net"] * 0.1}

    chain = Chain([lambda s: {"net": s["net"]}, async_tax if asynchronous else sync_tax])
    outer = outer_with(chain)
    assert outer.is_sync is not asynchronous
    state = await outer.ainvoke({}) if asynchronous else outer.invoke({})
    assert state["gross"] == 110.0


def test_graph_with_a_subgraph_round_trips_through_json() -> None:
    """A parent spec naming a sub-graph node rebuilds from JSON with the same registry."""
    outer = outer_with(inner_tax())
    compiled = outer.compile()
    rebuilt = CompiledGraph(GraphSpec.from_json(compiled.spec.to_json()), compiled.registry)
    assert rebuilt.invoke({}) == compiled.invoke({})


async def test_subgraph_does_not_write_back_keys_it_did_not_change() -> None:
    """A sub-graph that only reads ``x`` does not write ``x`` back, even when a sibling node
    running in parallel updates ``x`` meanwhile."""

    async def slow_read(state: Any) -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {"z": state["x"] * 10}

    async def sibling(state: Any) -> dict[str, Any]:
        return {"x": 2}

    inner = Graph("inner", retry=NO_RETRY)
    inner.add_node("read", slow_read).set_entry_point("read").set_finish_point("read")
    outer = Graph("outer", retry=NO_RETRY)
    outer.add_node("a", lambda s: {"x": 1}).add_node("sub", inner).add_node("sibling", sibling)
    outer.add_edge("a", "sub").add_edge("a", "sibling")
    outer.set_entry_point("a").set_finish_point(["sub", "sibling"])
    assert await outer.ainvoke({}) == {"x": 2, "z": 10}


def test_subgraph_writes_to_reducer_keys_are_not_counted_twice() -> None:
    """A sub-graph adding 1 to an "add" counter and appending to an "append" list changes the
    parent's values by exactly that much."""
    inner = Graph("inner", retry=NO_RETRY)
    inner.add_node("inc", lambda s: {"count": 1, "log": ["inner"]})
    inner.set_reducer("count", "add").set_reducer("log", "append")
    inner.set_entry_point("inc").set_finish_point("inc")
    outer = Graph("outer", retry=NO_RETRY)
    outer.add_node("a", lambda s: {"count": 1, "log": ["a"]}).add_node("sub", inner)
    outer.set_reducer("count", "add").set_reducer("log", "append")
    outer.add_edge("a", "sub").set_entry_point("a").set_finish_point("sub")
    assert outer.invoke({}) == {"count": 2, "log": ["a", "inner"]}


def test_subgraph_changing_a_custom_reducer_key_is_a_clear_error() -> None:
    """A sub-graph's new value cannot go through a custom reducer (no delta is known), so the
    run fails with a RunError naming the sub-graph node and the key."""
    from belugaflow import RunError

    def keep_max(current: Any, update: Any) -> Any:
        return update if current is None else max(current, update)

    inner = Graph("inner", retry=NO_RETRY)
    inner.add_node("w", lambda s: {"best": 5}).set_entry_point("w").set_finish_point("w")
    outer = Graph("outer", retry=NO_RETRY)
    outer.add_node("a", lambda s: {"best": 1}).add_node("sub", inner)
    outer.set_reducer("best", keep_max)
    outer.add_edge("a", "sub").set_entry_point("a").set_finish_point("sub")
    with pytest.raises(RunError) as info:
        outer.invoke({})
    assert info.value.node == "sub" and "'best'" in str(info.value)
