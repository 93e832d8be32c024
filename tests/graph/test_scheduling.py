"""Scheduling rules of graph runs: joins, skips, concurrency, threads, loops, routes, reducers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest

from belugaflow import (
    Event,
    EventKind,
    Graph,
    MaxStepsExceededError,
    NodeFailedError,
    RetryPolicy,
    RouteError,
    RunError,
    SpecError,
    StateConflictError,
)

NO_RETRY = RetryPolicy.none()


def writes(key: str, value: Any = True) -> Callable[[Any], dict[str, Any]]:
    """A plain node that writes ``{key: value}``."""

    def node(state: Any) -> dict[str, Any]:
        return {key: value}

    return node


def tracing(name: str, delay: float | None = None) -> Callable[[Any], Any]:
    """A node that appends ``name`` to ``trace``; async (sleeping ``delay``) when delay given."""
    if delay is None:

        def node(state: Any) -> dict[str, Any]:
            return {"trace": [name]}

        return node

    async def anode(state: Any) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {"trace": [name]}

    return anode


def graph(name: str = "g", **kwargs: Any) -> Graph:
    kwargs.setdefault("retry", NO_RETRY)
    g = Graph(name, **kwargs)
    g.set_reducer("trace", "append")
    return g


# -- AND-join and skips --------------------------------------------------------------------------


async def test_join_waits_for_every_fired_predecessor() -> None:
    """A join node runs once, after all its predecessors completed, and sees all their writes."""
    seen: list[dict[str, Any]] = []

    async def slow(state: Any) -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {"slow": 1}

    async def fast(state: Any) -> dict[str, Any]:
        return {"fast": 2}

    def join(state: Any) -> dict[str, Any]:
        seen.append(dict(state))
        return {"sum": state["slow"] + state["fast"]}

    g = graph()
    g.add_node("start", writes("start"))
    g.add_node("slow", slow).add_node("fast", fast).add_node("join", join)
    g.add_edge("start", "slow").add_edge("start", "fast")
    g.add_edge("slow", "join").add_edge("fast", "join")
    g.set_entry_point("start").set_finish_point("join")
    state = await g.ainvoke({})
    assert state["sum"] == 3
    assert len(seen) == 1 and {"slow", "fast", "start"} <= set(seen[0])


def test_skips_propagate_and_joins_run_on_any_fired_edge() -> None:
    """An unchosen branch is skipped with everything only it leads to; a join with one fired
    and one skipped in-edge still runs."""
    events: list[Event] = []
    g = graph(hooks=[events.append])
    for name in ("a", "left", "right", "right2", "only_right", "join"):
        g.add_node(name, tracing(name))
    g.add_conditional_edges("a", lambda s: "L", {"L": "left", "R": "right"})
    g.add_edge("right", "right2").add_edge("right2", "only_right")
    g.add_edge("left", "join").add_edge("right2", "join")
    g.set_entry_point("a").set_finish_point(["join", "only_right"])
    state = g.invoke({})
    assert state["trace"] == ["a", "left", "join"]
    skipped = [e.node for e in events if e.kind is EventKind.NODE_SKIPPED]
    assert sorted(skipped) == ["only_right", "right", "right2"]


async def test_join_of_two_skipped_branches_is_skipped() -> None:
    """A node whose in-edges were all skipped is skipped too, and the run still ends."""
    g = graph()
    for name in ("a", "b", "c", "d", "join", "after"):
        g.add_node(name, tracing(name, 0))
    g.add_conditional_edges("a", lambda s: "d", ["b", "c", "d"])
    g.add_edge("b", "join").add_edge("c", "join").add_edge("join", "after")
    g.set_entry_point("a").set_finish_point(["after", "d"])
    state = await asyncio.wait_for(g.ainvoke({}), 2)
    assert state["trace"] == ["a", "d"]


def test_router_returning_a_list_fans_out() -> None:
    """A router returning several keys runs every chosen branch and skips the rest."""
    g = graph()
    for name in ("a", "b", "c", "d"):
        g.add_node(name, tracing(name))
    g.add_conditional_edges("a", lambda s: ["x", "z"], {"x": "b", "y": "c", "z": "d"})
    g.set_entry_point("a").set_finish_point(["b", "c", "d"])
    assert sorted(g.invoke({})["trace"]) == ["a", "b", "d"]


def test_router_returning_an_unknown_key_fails_with_route_error() -> None:
    """A router returning a key outside its mapping raises RouteError naming node, key and
    the known routes, with the partial state attached."""
    g = graph()
    g.add_node("a", writes("a", 1)).add_node("b", writes("b"))
    g.add_conditional_edges("a", lambda s: "nowhere", {"go": "b"})
    g.set_entry_point("a").set_finish_point("b")
    with pytest.raises(RouteError) as info:
        g.invoke({})
    err = info.value
    assert err.graph == "g" and err.node == "a"
    assert "'nowhere'" in str(err) and "'go'" in str(err)
    assert err.state == {"a": 1}


async def test_router_returning_none_is_a_route_error() -> None:
    """A router that forgets to return (None) is a RouteError, on the async path too."""

    async def router(state: Any) -> None:
        return None

    g = graph()
    g.add_node("a", tracing("a", 0)).add_node("b", writes("b"))
    g.add_conditional_edges("a", router, ["b"])
    g.set_entry_point("a").set_finish_point("b")
    with pytest.raises(RouteError, match="returned None"):
        await g.ainvoke({})


def test_router_that_raises_fails_the_run_naming_the_router() -> None:
    """An exception in a router becomes a RunError naming the node it follows."""

    def router(state: Any) -> str:
        raise KeyError("missing")

    g = graph()
    g.add_node("a", writes("a")).add_node("b", writes("b"))
    g.add_conditional_edges("a", router, ["b"])
    g.set_entry_point("a").set_finish_point("b")
    with pytest.raises(RunError, match="router after node 'a' raised KeyError") as info:
        g.invoke({})
    assert isinstance(info.value.__cause__, KeyError)


async def test_entry_point_with_an_incoming_edge_waits_or_is_rejected() -> None:
    """An entry point that is also the target of an edge either is rejected at compile time or
    waits for that edge (AND-join) — it never runs before its predecessor completed."""
    log: list[str] = []

    async def a(state: Any) -> dict[str, Any]:
        log.append("a.start")
        await asyncio.sleep(0.02)
        log.append("a.end")
        return {"a": 1}

    async def b(state: Any) -> dict[str, Any]:
        log.append("b.start")
        return {"b": 1}

    g = graph()
    g.add_node("a", a).add_node("b", b).add_edge("a", "b")
    g.set_entry_point(["a", "b"]).set_finish_point("b")
    try:
        g.compile()
    except SpecError:
        return
    await g.ainvoke({})
    assert log.index("a.end") < log.index("b.start")


# -- concurrency -------------------------------------------------------------------------------


class Gauge:
    """Counts nodes running at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.order: list[str] = []

    def node(self, name: str, delay: float) -> Callable[[Any], Any]:
        async def run(state: Any) -> dict[str, Any]:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.order.append(name)
            await asyncio.sleep(delay)
            self.active -= 1
            return {"trace": [name]}

        return run


def fan_out(gauge: Gauge, width: int, *, delays: list[float] | None = None, **kw: Any) -> Graph:
    g = graph(**kw)
    g.add_node("start", tracing("start"))
    g.add_node("join", tracing("join"))
    for k in range(width):
        name = f"w{k:02}"
        g.add_node(name, gauge.node(name, 0.01 if delays is None else delays[k]))
        g.add_edge("start", name).add_edge(name, "join")
    return g.set_entry_point("start").set_finish_point("join")


async def test_fan_out_peak_concurrency_is_exactly_max_workers() -> None:
    """A fan-out of 12 async nodes with max_workers=3 has exactly 3 running at its peak."""
    gauge = Gauge()
    state = await fan_out(gauge, 12, max_workers=3).ainvoke({})
    assert gauge.peak == 3
    assert Counter(state["trace"]) == Counter(["start", "join", *(f"w{k:02}" for k in range(12))])


async def test_fan_out_uses_every_worker_when_there_is_room() -> None:
    """With max_workers above the fan-out width, all branches run at once."""
    gauge = Gauge()
    await fan_out(gauge, 5, max_workers=10).ainvoke({})
    assert gauge.peak == 5


@pytest.mark.parametrize("mode", ["ainvoke", "invoke"])
async def test_parallel_false_runs_one_at_a_time_in_a_stable_order(mode: str) -> None:
    """parallel=False runs async nodes one at a time, in declaration order, whatever their
    durations."""
    orders = []
    for delays in ([0.004, 0.0, 0.002, 0.001, 0.003], [0.0, 0.004, 0.001, 0.003, 0.002]):
        gauge = Gauge()
        g = fan_out(gauge, 5, delays=delays, parallel=False, max_workers=4)
        if mode == "ainvoke":
            state = await g.ainvoke({})
        else:
            state = await asyncio.to_thread(g.invoke, {})
        assert gauge.peak == 1
        orders.append(state["trace"])
    assert orders[0] == orders[1] == ["start", *(f"w{k:02}" for k in range(5)), "join"]


async def test_blocking_node_runs_in_a_thread_without_blocking_the_loop() -> None:
    """A blocking=True node sleeping 0.2 s runs in a worker thread while an async node keeps
    ticking on the loop."""
    ticks: list[float] = []
    threads: dict[str, str] = {}
    done = threading.Event()

    def blocking(state: Any) -> dict[str, Any]:
        threads["blocking"] = threading.current_thread().name
        time.sleep(0.2)
        done.set()
        return {"blocked": True}

    def inline(state: Any) -> dict[str, Any]:
        threads["inline"] = threading.current_thread().name
        return {"inline": True}

    async def ticker(state: Any) -> dict[str, Any]:
        while not done.is_set() and len(ticks) < 100:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)
        return {"ticks": len(ticks)}

    g = graph()
    g.add_node("start", inline).add_node("blocking", blocking, blocking=True)
    g.add_node("ticker", ticker)
    g.add_edge("start", "blocking").add_edge("start", "ticker")
    g.set_entry_point("start").set_finish_point(["blocking", "ticker"])
    state = await g.ainvoke({})
    assert state["blocked"] and state["ticks"] >= 5
    assert threads["inline"] == threading.current_thread().name
    assert threads["blocking"] != threading.current_thread().name


def test_blocking_flag_is_only_for_plain_sync_functions() -> None:
    """blocking=True on an async function is rejected when the node is added."""

    async def node(state: Any) -> None:
        return None

    with pytest.raises(TypeError, match="blocking=True"):
        Graph("g").add_node("a", node, blocking=True)


# -- which driver, which loop ----------------------------------------------------------------


def test_sync_invoke_of_plain_functions_uses_no_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """invoke() of an all-plain-function graph runs in the caller's thread with no event loop."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an event loop was created")

    monkeypatch.setattr(asyncio, "run", forbidden)
    monkeypatch.setattr(asyncio, "new_event_loop", forbidden)
    seen: list[tuple[str, bool]] = []

    def node(state: Any) -> dict[str, Any]:
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:
            running = False
        seen.append((threading.current_thread().name, running))
        return {"n": state.get("n", 0) + 1}

    g = graph()
    g.add_node("a", node).add_node("b", node).add_edge("a", "b")
    g.add_conditional_edges("b", lambda s: "end", {"end": "c"}).add_node("c", writes("c"))
    g.set_entry_point("a").set_finish_point("c")
    assert g.is_sync
    assert g.invoke({}) == {"n": 2, "c": True}
    assert seen == [(threading.current_thread().name, False)] * 2


def test_graph_with_async_nodes_runs_from_sync_invoke() -> None:
    """invoke() of a graph with async nodes runs it on a private event loop."""
    g = graph()
    g.add_node("a", tracing("a", 0)).add_node("b", tracing("b"))
    g.add_edge("a", "b").set_entry_point("a").set_finish_point("b")
    assert not g.is_sync
    assert g.invoke({})["trace"] == ["a", "b"]


async def test_sync_invoke_of_async_graph_inside_a_running_loop_is_a_clear_error() -> None:
    """invoke() of an async graph from inside a running loop raises a RuntimeError that points
    to ainvoke (and leaves no un-awaited coroutine behind)."""
    g = graph()
    g.add_node("a", tracing("a", 0)).set_entry_point("a").set_finish_point("a")
    with pytest.raises(RuntimeError, match="ainvoke"):
        g.invoke({})
    assert (await g.ainvoke({}))["trace"] == ["a"]


async def test_sync_graph_may_be_invoked_inside_a_running_loop() -> None:
    """invoke() of an all-sync graph needs no loop, so it also works inside a running one."""
    g = graph()
    g.add_node("a", tracing("a")).set_entry_point("a").set_finish_point("a")
    assert g.invoke({})["trace"] == ["a"]


def test_input_must_be_a_mapping() -> None:
    """A non-dict input is rejected with a TypeError naming the graph."""
    g = graph()
    g.add_node("a", tracing("a")).set_entry_point("a").set_finish_point("a")
    with pytest.raises(TypeError, match="graph 'g': input must be a dict"):
        g.invoke([1, 2])  # type: ignore[arg-type]


def test_input_state_is_not_mutated() -> None:
    """The run works on a copy of the input dict."""
    g = graph()
    g.add_node("a", writes("x", 1)).set_entry_point("a").set_finish_point("a")
    data = {"y": 0}
    assert g.invoke(data) == {"y": 0, "x": 1}
    assert data == {"y": 0}


def test_nodes_see_a_read_only_view_of_the_state() -> None:
    """A node gets the state read-only; writing to it fails that node."""

    def bad(state: Any) -> None:
        state["x"] = 1

    g = graph()
    g.add_node("a", bad).set_entry_point("a").set_finish_point("a")
    with pytest.raises(NodeFailedError) as info:
        g.invoke({})
    assert isinstance(info.value.__cause__, TypeError)


# -- loops -------------------------------------------------------------------------------------


def counter_loop(limit: int, *, max_steps: int = 1000, **kw: Any) -> Graph:
    g = graph(max_steps=max_steps, **kw)
    g.add_node("inc", lambda s: {"count": s.get("count", 0) + 1, "trace": ["inc"]})
    g.add_node("end", tracing("end"))
    g.add_conditional_edges(
        "inc", lambda s: "again" if s["count"] < limit else "done", {"again": "inc", "done": "end"}
    )
    return g.set_entry_point("inc").set_finish_point("end")


def test_loop_through_a_router_runs_until_its_exit() -> None:
    """A conditional self-loop runs its node again until the router takes the exit route."""
    state = counter_loop(3).invoke({})
    assert state == {"count": 3, "trace": ["inc", "inc", "inc", "end"]}


async def test_runaway_loop_fails_with_max_steps_exceeded() -> None:
    """A loop that never exits fails with MaxStepsExceededError naming graph and node, with
    the partial state."""
    for run in (lambda g: asyncio.to_thread(g.invoke, {}), lambda g: g.ainvoke({})):
        with pytest.raises(MaxStepsExceededError) as info:
            await run(counter_loop(10**9, max_steps=5))
        err = info.value
        assert err.graph == "g" and err.node == "inc"
        assert "max_steps=5" in str(err)
        assert err.state["count"] == 5


def test_max_steps_counts_runs_of_loop_nodes_exactly() -> None:
    """max_steps counts the runs of nodes inside loops: 4 turns of a one-node loop need exactly
    4; the exit node, outside the loop, is free."""
    assert counter_loop(4, max_steps=4).invoke({})["count"] == 4
    with pytest.raises(MaxStepsExceededError, match="max_steps=3 runs of nodes inside loops"):
        counter_loop(4, max_steps=3).invoke({})


def test_nodes_before_and_after_a_loop_do_not_count() -> None:
    """Only nodes on the loop's path count: a prologue and an epilogue longer than max_steps run."""
    g = graph(max_steps=4)
    for i in range(10):
        g.add_node(f"pre{i}", lambda s: None)
        if i:
            g.add_edge(f"pre{i - 1}", f"pre{i}")
    g.add_node("inc", lambda s: {"count": s.get("count", 0) + 1})
    g.add_node("check", lambda s: None)
    g.add_edge("pre9", "inc").add_edge("inc", "check")
    g.add_conditional_edges(
        "check", lambda s: "again" if s["count"] < 2 else "done", {"again": "inc", "done": "post0"}
    )
    for i in range(10):
        g.add_node(f"post{i}", lambda s: None)
        if i:
            g.add_edge(f"post{i - 1}", f"post{i}")
    g.set_entry_point("pre0").set_finish_point("post9")
    assert g.invoke({}) == {"count": 2}  # 2 turns of 2 loop nodes: 4 counted, 20 free
    g2 = graph(max_steps=3)
    g2.add_node("inc", lambda s: {"count": s.get("count", 0) + 1})
    g2.add_node("check", lambda s: None).add_node("end", lambda s: None)
    g2.add_edge("inc", "check")
    g2.add_conditional_edges(
        "check", lambda s: "again" if s["count"] < 2 else "done", {"again": "inc", "done": "end"}
    )
    with pytest.raises(MaxStepsExceededError) as info:
        g2.set_entry_point("inc").set_finish_point("end").invoke({})
    assert info.value.node == "check"


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_dag_larger_than_max_steps_runs(asynchronous: bool) -> None:
    """A loop-free graph of 1,002 nodes (root, 10 layers of 100, sink) runs with the default
    max_steps of 1000: the bound is for loops, not for a graph's size."""
    g = Graph("big")
    g.add_node("root", lambda s: None)
    previous = ["root"]
    for layer in range(10):
        names = [f"n{layer}_{i}" for i in range(100)]
        for name in names:
            g.add_node(name, lambda s, name=name: {name: True})
            for before in previous:
                g.add_edge(before, name)
        previous = names
    g.add_node("sink", lambda s: {"done": len(s)})
    for before in previous:
        g.add_edge(before, "sink")
    g.set_entry_point("root").set_finish_point("sink")
    assert g.compile().spec.max_steps == 1000
    state = await g.ainvoke({}) if asynchronous else g.invoke({})
    assert state["done"] == 1000


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_loop_with_a_parallel_branch_inside(asynchronous: bool) -> None:
    """A loop-back to the entry restarts the whole parallel region each turn: every node of
    the loop runs once per turn and the join always runs after both branches."""
    delay = 0.005 if asynchronous else None
    g = graph(max_steps=100)
    g.add_node("start", tracing("start", delay))
    g.add_node("left", tracing("left", delay))
    g.add_node("right", tracing("right", 0 if asynchronous else None))
    g.add_node("join", lambda s: {"turns": s.get("turns", 0) + 1, "trace": ["join"]})
    g.add_node("end", tracing("end"))
    g.add_edge("start", "left").add_edge("start", "right")
    g.add_edge("left", "join").add_edge("right", "join")
    g.add_conditional_edges(
        "join", lambda s: "again" if s["turns"] < 3 else "done", {"again": "start", "done": "end"}
    )
    g.set_entry_point("start").set_finish_point("end")
    state = await g.ainvoke({}) if asynchronous else g.invoke({})
    assert state["turns"] == 3
    trace = state["trace"]
    assert Counter(trace) == {"start": 3, "left": 3, "right": 3, "join": 3, "end": 1}
    turns = [trace[k : k + 4] for k in range(0, 12, 4)]
    for turn in turns:
        assert turn[0] == "start" and turn[3] == "join"
        assert sorted(turn[1:3]) == ["left", "right"]
    assert trace[-1] == "end"


async def test_loop_back_restarts_target_and_everything_downstream() -> None:
    """Looping back to a node reruns it and every node it reaches, including a parallel side
    branch that was still running when the loop was chosen (its result is kept, not lost)."""
    g = graph(max_steps=100)
    g.add_node("entry", tracing("entry"))
    g.add_node("t", lambda s: {"turn": s.get("turn", 0) + 1, "trace": ["t"]})
    g.add_node("side", tracing("side", 0.02))
    g.add_node("check", tracing("check", 0))
    g.add_node("end", tracing("end"))
    g.add_edge("entry", "t").add_edge("t", "side").add_edge("t", "check")
    g.add_conditional_edges(
        "check", lambda s: "again" if s["turn"] < 2 else "done", {"again": "t", "done": "end"}
    )
    g.set_entry_point("entry").set_finish_point("end")
    state = await g.ainvoke({})
    assert Counter(state["trace"]) == {"entry": 1, "t": 2, "side": 2, "check": 2, "end": 1}
    # the first turn's side branch completed before the second turn started
    trace = state["trace"]
    assert trace.index("side") < [k for k, n in enumerate(trace) if n == "t"][1]


async def test_loop_back_chosen_with_another_route_is_a_route_error() -> None:
    """A loop-back must be chosen alone: choosing it together with a forward route fails."""
    g = graph()
    g.add_node("a", tracing("a")).add_node("b", tracing("b"))
    g.add_conditional_edges("a", lambda s: ["again", "on"], {"again": "a", "on": "b"})
    g.set_entry_point("a").set_finish_point("b")
    with pytest.raises(RouteError, match="loop-back"):
        await g.ainvoke({})


# -- state, reducers and conflicts -------------------------------------------------------------


async def test_builtin_and_custom_reducers_combine_parallel_writes() -> None:
    """append, merge, add and a custom reducer combine writes of parallel nodes."""

    def keep_max(current: Any, update: Any) -> Any:
        return update if current is None else max(current, update)

    g = graph()
    g.set_reducer("meta", "merge").set_reducer("total", "add").set_reducer("best", keep_max)
    g.add_node("start", lambda s: {"trace": "start", "total": 1})

    def branch(k: int) -> Callable[[Any], Any]:
        async def node(state: Any) -> dict[str, Any]:
            await asyncio.sleep(0.001 * (3 - k))
            return {"trace": [f"b{k}"], "meta": {f"b{k}": k}, "total": k, "best": k * 10}

        return node

    for k in range(3):
        g.add_node(f"b{k}", branch(k)).add_edge("start", f"b{k}")
    g.set_entry_point("start").set_finish_point(["b0", "b1", "b2"])
    state = await g.ainvoke({"meta": {"in": -1}})
    assert state["trace"][0] == "start" and sorted(state["trace"][1:]) == ["b0", "b1", "b2"]
    assert state["meta"] == {"in": -1, "b0": 0, "b1": 1, "b2": 2}
    assert state["total"] == 1 + 0 + 1 + 2
    assert state["best"] == 20


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_parallel_writes_without_reducer_are_a_state_conflict(asynchronous: bool) -> None:
    """Two parallel nodes writing one key without a reducer fail with StateConflictError naming
    both nodes and the key — on the sync driver too, where they happen to run in turn."""

    async def b_async(state: Any) -> dict[str, Any]:
        return {"x": 1}

    g = graph()
    g.add_node("a", writes("a"))
    g.add_node("b", b_async if asynchronous else writes("x", 1))
    g.add_node("c", writes("x", 2))
    g.add_edge("a", "b").add_edge("a", "c")
    g.set_entry_point("a").set_finish_point(["b", "c"])
    with pytest.raises(StateConflictError) as info:
        await g.ainvoke({}) if asynchronous else g.invoke({})
    err = info.value
    assert err.key == "x" and set(err.nodes) == {"b", "c"}
    assert "'b'" in str(err) and "'c'" in str(err) and "'x'" in str(err)
    assert err.state["a"] is True


def test_sequential_writes_to_one_key_need_no_reducer() -> None:
    """A node may overwrite a key written by its ancestor; the last write wins."""
    g = graph()
    g.add_node("a", writes("x", 1)).add_node("b", writes("y", 0)).add_node("c", writes("x", 3))
    g.add_edge("a", "b").add_edge("b", "c").set_entry_point("a").set_finish_point("c")
    assert g.invoke({"x": 0}) == {"x": 3, "y": 0}


def test_exclusive_branches_may_write_the_same_key() -> None:
    """Two branches of one router that never both run may write the same key."""
    g = graph()
    g.add_node("a", writes("a")).add_node("b", writes("x", "b")).add_node("c", writes("x", "c"))
    g.add_conditional_edges("a", lambda s: "c", ["b", "c"])
    g.set_entry_point("a").set_finish_point(["b", "c"])
    assert g.invoke({})["x"] == "c"


@pytest.mark.parametrize("bad", [[1, 2], "text", 42])
@pytest.mark.parametrize("asynchronous", [False, True])
async def test_node_returning_a_non_dict_is_a_clear_run_error(bad: Any, asynchronous: bool) -> None:
    """A node returning something other than a dict or None fails the run with a RunError
    naming the node and the type it returned."""
    g = graph()
    if asynchronous:

        async def node(state: Any) -> Any:
            return bad

    else:

        def node(state: Any) -> Any:
            return bad

    g.add_node("a", writes("a", 1)).add_node("bad", node).add_edge("a", "bad")
    g.set_entry_point("a").set_finish_point("bad")
    with pytest.raises(RunError) as info:
        await g.ainvoke({}) if asynchronous else g.invoke({})
    err = info.value
    assert err.node == "bad" and type(bad).__name__ in str(err)
    assert "must return a dict" in str(err)
    assert err.state == {"a": 1}


def test_node_may_return_none_or_any_mapping() -> None:
    """None means no update; any Mapping is accepted as an update."""
    g = graph()
    g.add_node("a", lambda s: None).add_node("b", lambda s: MappingProxyType({"b": 1}))
    g.add_edge("a", "b").set_entry_point("a").set_finish_point("b")
    assert g.invoke({}) == {"b": 1}


@pytest.mark.parametrize("router_first", ["loop router first", "forward router first"])
def test_loop_does_not_depend_on_router_declaration_order(router_first: str) -> None:
    """A loop t -route-> r -route-> t runs the same whichever router is declared first."""
    g = graph(max_steps=50)
    g.add_node("e", tracing("e"))
    g.add_node("t", lambda s: {"n": s.get("n", 0) + 1, "trace": ["t"]})
    g.add_node("r", tracing("r")).add_node("end", tracing("end"))
    g.add_edge("e", "t")

    def forward() -> None:
        g.add_conditional_edges("t", lambda s: "go", {"go": "r"})

    def loop() -> None:
        g.add_conditional_edges(
            "r", lambda s: "again" if s["n"] < 2 else "done", {"again": "t", "done": "end"}
        )

    for declare in (loop, forward) if router_first == "loop router first" else (forward, loop):
        declare()
    g.set_entry_point("e").set_finish_point("end")
    assert g.invoke({})["trace"] == ["e", "t", "r", "t", "r", "end"]


@pytest.mark.parametrize("entries", [["a", "t"], ["t", "a"]])
def test_loop_back_to_an_entry_point_does_not_depend_on_entry_order(entries: list[str]) -> None:
    """A route back to an entry point is the loop-back, whatever the order of the entry
    points: the entry runs first and the loop runs the same number of turns."""
    g = graph(max_steps=50)
    g.add_node("a", tracing("a"))
    g.add_node("t", lambda s: {"trace": ["t"], "n": s.get("n", 0) + 1})
    g.add_node("r", tracing("r")).add_node("end", tracing("end"))
    g.add_edge("a", "r")
    g.add_conditional_edges("t", lambda s: "go", {"go": "r"})
    g.add_conditional_edges(
        "r", lambda s: "again" if s["n"] < 2 else "done", {"again": "t", "done": "end"}
    )
    g.set_entry_point(entries).set_finish_point("end")
    state = g.invoke({})
    assert state["n"] == 2
    assert sorted(state["trace"][:2]) == ["a", "t"]
    assert state["trace"][2:] == ["r", "t", "r", "end"]


def test_graph_batch_keeps_failures_in_their_slots() -> None:
    """batch() of a graph returns each input's final state or the exception it raised."""

    def check(state: Any) -> dict[str, Any]:
        if state["n"] < 0:
            raise ValueError("negative")
        return {"ok": True}

    g = graph()
    g.add_node("check", check).set_entry_point("check").set_finish_point("check")
    results = g.batch([{"n": 1}, {"n": -1}, {"n": 2}])
    assert results[0] == {"n": 1, "ok": True} and results[2] == {"n": 2, "ok": True}
    assert isinstance(results[1], NodeFailedError)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_agent_loop_closed_by_a_plain_edge(asynchronous: bool) -> None:
    """The agent/tools pattern — the head's router decides, the body returns by a plain
    edge — loops until the router exits."""
    g = graph(max_steps=50)
    g.add_node("agent", lambda s: {"trace": ["agent"], "n": s.get("n", 0) + 1})
    g.add_node("tools", tracing("tools", 0 if asynchronous else None))
    g.add_node("end", tracing("end"))
    g.add_conditional_edges(
        "agent", lambda s: "work" if s["n"] < 3 else "exit", {"work": "tools", "exit": "end"}
    )
    g.add_edge("tools", "agent").set_entry_point("agent").set_finish_point("end")
    state = await g.ainvoke({}) if asynchronous else g.invoke({})
    assert state["trace"] == ["agent", "tools", "agent", "tools", "agent", "end"]


@pytest.mark.parametrize("entries", [["e1", "e2"], ["e2", "e1"]])
def test_loop_entered_from_two_entry_points_does_not_depend_on_entry_order(
    entries: list[str],
) -> None:
    """A loop t -> x -> r -route-> t whose body x is also fed by a second entry point keeps t
    as its head whatever the order of the entry points: x always waits for t (AND-join)."""
    g = graph(max_steps=50)
    for name in ("e1", "e2", "x", "r", "end"):
        g.add_node(name, tracing(name))
    g.add_node("t", lambda s: {"trace": ["t"], "n": s.get("n", 0) + 1})
    g.add_edge("e1", "t").add_edge("t", "x").add_edge("e2", "x")
    g.add_conditional_edges("x", lambda s: "go", {"go": "r"})
    g.add_conditional_edges(
        "r", lambda s: "again" if s.get("n", 0) < 2 else "done", {"again": "t", "done": "end"}
    )
    g.set_entry_point(entries).set_finish_point("end")
    trace = g.invoke({})["trace"]
    assert sorted(trace[:2]) == ["e1", "e2"]
    assert trace[2:] == ["t", "x", "r", "t", "x", "r", "end"]
