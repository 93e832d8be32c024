"""Property tests of the graph scheduler against a separate, sequential reference interpreter.

Random DAGs (≤ 12 nodes) with static edges, conditional edges and routers that decide from
state written by the node they follow. Every node writes its own key ``k<i>`` (a value computed
from its direct predecessors' keys) and appends its name to ``trace`` (``append`` reducer).
The reference below re-implements the rules in a few lines, without the library's scheduler:

* a node runs iff it is an entry point, or at least one in-edge fired (its source ran and,
  for a conditional edge, the router chose it); otherwise it is skipped;
* nodes are visited in topological (index) order, so every in-edge is resolved first.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from belugaflow import Event, EventKind, Graph, GraphSpec, RetryPolicy, StateConflictError

MOD = 1000

# -- the generated graphs ------------------------------------------------------------------------


@dataclass(frozen=True)
class GenGraph:
    """A random DAG: nodes 0..n-1 in topological order."""

    n: int
    static: frozenset[tuple[int, int]]
    """Unconditional edges (i, j), i < j."""
    routes: dict[int, tuple[int, ...]]
    """Router of node i -> its route targets (route key ``to<j>``)."""
    options: dict[int, tuple[tuple[int, ...], ...]]
    """Router of node i -> the target sets it may choose (picked by state value)."""
    single_as_str: dict[int, bool]
    """Router returns a bare key (not a list) when it picks exactly one route."""
    entries: tuple[int, ...]
    seeds: tuple[int, ...]
    kinds: tuple[str, ...]
    """Per node: "sync", "async" or "blocking" (the sync-invoke property uses "sync" only)."""
    router_async: dict[int, bool]
    delays: tuple[float, ...]
    max_workers: int
    parallel: bool
    loop: tuple[int, int, int] | None = None
    """``(r, t, turns)``: node r's router loops back to t until r has run ``turns`` times."""
    writers: frozenset[int] = frozenset()
    """Nodes that also write the shared key ``x`` (which has no reducer)."""

    def preds(self, j: int) -> list[tuple[int, bool]]:
        """In-edges of ``j`` as (source, is_conditional)."""
        edges = [(i, False) for (i, t) in sorted(self.static) if t == j]
        edges += [(i, True) for i, targets in sorted(self.routes.items()) if j in targets]
        return edges

    def pred_nodes(self, j: int) -> list[int]:
        return sorted({i for i, _ in self.preds(j)})

    def succ_nodes(self, i: int) -> set[int]:
        return {t for (s, t) in self.static if s == i} | set(self.routes.get(i, ()))

    def reach(self, i: int) -> set[int]:
        """``i`` and every node reachable from it through forward edges."""
        seen, stack = {i}, [i]
        while stack:
            for nxt in self.succ_nodes(stack.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def region(self) -> set[int]:
        """The nodes a loop-back reruns: everything its target reaches."""
        assert self.loop is not None
        return self.reach(self.loop[1])


@st.composite
def gen_graphs(
    draw: st.DrawFn, *, kinds: tuple[str, ...], loops: bool = False, writers: bool = False
) -> GenGraph:
    n = draw(st.integers(1, 12))
    static: set[tuple[int, int]] = set()
    routes: dict[int, list[int]] = {}
    entries = [0]
    sparse = draw(st.sampled_from([3, 6, 15]))  # weight of "no edge": dense to sparse graphs
    for j in range(1, n):
        for i in range(j):
            edge = draw(st.sampled_from(["none"] * sparse + ["static", "static", "cond", "both"]))
            if edge in ("static", "both"):
                static.add((i, j))
            if edge in ("cond", "both"):
                routes.setdefault(i, []).append(j)
        has_in = any(t == j for _, t in static) or any(j in r for r in routes.values())
        if not has_in:
            if draw(st.booleans()):
                entries.append(j)
            else:
                static.add((draw(st.integers(0, j - 1)), j))
    options: dict[int, tuple[tuple[int, ...], ...]] = {}
    for i, targets in routes.items():
        subsets = st.lists(st.sampled_from(targets), unique=True, max_size=len(targets))
        options[i] = tuple(
            tuple(sorted(s)) for s in draw(st.lists(subsets, min_size=1, max_size=3))
        )
    graph = GenGraph(
        n=n,
        static=frozenset(static),
        routes={i: tuple(t) for i, t in routes.items()},
        options=options,
        single_as_str={i: draw(st.booleans()) for i in routes},
        entries=tuple(entries),
        seeds=tuple(draw(st.lists(st.integers(0, MOD - 1), min_size=n, max_size=n))),
        kinds=tuple(draw(st.lists(st.sampled_from(kinds), min_size=n, max_size=n))),
        router_async={i: draw(st.booleans()) and kinds != ("sync",) for i in routes},
        delays=tuple(
            draw(st.lists(st.sampled_from([0.0, 0.0, 0.001, 0.003]), min_size=n, max_size=n))
        ),
        max_workers=draw(st.integers(1, 4)),
        parallel=draw(st.booleans()),
    )
    if loops and draw(st.booleans()):
        r = draw(st.integers(0, n - 1))
        ancestors = sorted(a for a in range(r) if r in graph.reach(a))
        t = draw(st.sampled_from(ancestors)) if ancestors and draw(st.integers(0, 3)) else r
        graph = replace(with_loop_shape(graph, r, t), loop=(r, t, draw(st.integers(1, 3))))
        if r not in graph.routes:
            graph = replace(
                graph,
                routes={**graph.routes, r: ()},
                options={**graph.options, r: ((),)},
                single_as_str={**graph.single_as_str, r: False},
                router_async={**graph.router_async, r: False},
            )
    if writers:
        chosen = draw(st.sets(st.integers(0, n - 1), max_size=4))
        graph = replace(graph, writers=frozenset(chosen))
    return graph


def with_loop_shape(g: GenGraph, r: int, t: int) -> GenGraph:
    """Drop edges until the region of a loop r -> t (all that t reaches) is entered only
    through t and holds only ancestors of r and nodes after r.

    Then each turn of the loop runs the same nodes whatever the timing (a region node that
    runs alongside r may or may not get to run before the loop restarts), and the loop's head
    is unambiguous (loops entered elsewhere, or through another entry point first:
    test_scheduling.py::*_does_not_depend_on_entry_order). Nodes left without an in-edge
    become entry points. The path t -> ... -> r is never touched.
    """
    while True:
        region = g.reach(t)
        keep = {a for a in range(g.n) if r in g.reach(a)} | g.reach(r)
        inside = region - {t}

        bad = {
            (i, j)
            for i in range(g.n)
            for j in g.succ_nodes(i)
            if (j in inside and i not in region) or (i in region and j in region - keep)
        }
        static = frozenset(edge for edge in g.static if edge not in bad)
        routes = {i: tuple(j for j in ts if (i, j) not in bad) for i, ts in g.routes.items()}
        if static == g.static and routes == g.routes:
            break
        routes = {i: ts for i, ts in routes.items() if ts}
        options = {
            i: tuple(tuple(j for j in o if j in routes[i]) for o in g.options[i]) for i in routes
        }
        g = replace(g, static=static, routes=routes, options=options)
    orphans = [j for j in range(g.n) if j not in g.entries and not g.preds(j)]
    return replace(g, entries=(*g.entries, *orphans))


# -- the reference interpreter -------------------------------------------------------------------


@dataclass
class Reference:
    ran: Counter[int] = field(default_factory=Counter)
    """Node -> how many times it ran."""
    skipped: set[int] = field(default_factory=set)
    """Nodes skipped in the final turn (or for good)."""
    state: dict[str, Any] = field(default_factory=dict)
    fired: dict[int, set[int]] = field(default_factory=dict)
    """Node -> the predecessors whose edge to it fired (in its last run)."""
    needs: dict[int, list[dict[int, int]]] = field(default_factory=dict)
    """Node -> per run: fired predecessor -> how many runs of it had completed by then."""


def value_of(g: GenGraph, j: int, state: Any) -> int:
    """What node ``j`` writes: its seed plus the values of its predecessors that ran."""
    total = g.seeds[j]
    for p in g.pred_nodes(j):
        total += state.get(f"k{p}", 0)
    return total % MOD


def choice_of(g: GenGraph, i: int, value: int) -> tuple[int, ...]:
    options = g.options[i]
    return options[value % len(options)]


def reference(g: GenGraph) -> Reference:
    """Visit nodes in topological order; a loop-back forgets its region and resumes at its
    target, which runs because the loop-back edge fired (nodes outside the region keep their
    outcome)."""
    ref = Reference()
    status: dict[int, str] = {}
    chosen: dict[int, set[int]] = {}
    looped_back = False
    j = 0
    while j < g.n:
        if j in status:
            j += 1
            continue
        fired = {
            i
            for i, conditional in g.preds(j)
            if status.get(i) == "ran" and (not conditional or j in chosen[i])
        }
        if looped_back and g.loop is not None and j == g.loop[1]:
            fired.add(g.loop[0])  # the loop-back edge fired
        if j not in g.entries and not fired:
            status[j] = "skipped"
            j += 1
            continue
        status[j] = "ran"
        ref.fired[j] = fired
        ref.needs.setdefault(j, []).append({p: ref.ran[p] for p in fired})
        ref.ran[j] += 1
        value = value_of(g, j, ref.state)
        ref.state[f"k{j}"] = value
        ref.state.setdefault("trace", []).append(f"n{j}")
        if j in g.writers:
            ref.state["x"] = f"n{j}"
        if g.loop is not None and j == g.loop[0]:
            ref.state["turns"] = ref.state.get("turns", 0) + 1
            if ref.state["turns"] < g.loop[2]:
                for m in g.region():
                    status.pop(m, None)
                    chosen.pop(m, None)
                looped_back = True
                j = g.loop[1]
                continue
        if j in g.routes:
            chosen[j] = set(choice_of(g, j, value))
        j += 1
    ref.skipped = {m for m, what in status.items() if what == "skipped"}
    return ref


def related(g: GenGraph, a: int, b: int) -> bool:
    """One of the two always finishes before the other starts (a path joins them)."""
    return a in g.reach(b) or b in g.reach(a)


# -- building and running the graph with the library ---------------------------------------------


class Tracker:
    """Thread-safe log of node starts/ends and of how many nodes run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []
        self.active = 0
        self.peak = 0
        self.loop_seen: list[bool] = []

    def enter(self, j: int) -> None:
        with self.lock:
            self.log.append(("start", j))
            self.active += 1
            self.peak = max(self.peak, self.active)

    def leave(self, j: int) -> None:
        with self.lock:
            self.active -= 1
            self.log.append(("end", j))


def has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def build(g: GenGraph, tracker: Tracker, events: list[Event], delays: tuple[float, ...]) -> Graph:
    graph = Graph(
        "prop",
        max_workers=g.max_workers,
        parallel=g.parallel,
        retry=RetryPolicy.none(),
        hooks=[events.append],
    )

    def make_node(j: int) -> Any:
        kind = g.kinds[j]

        def compute(state: Any) -> dict[str, Any]:
            update = {f"k{j}": value_of(g, j, state), "trace": [f"n{j}"]}
            if j in g.writers:
                update["x"] = f"n{j}"
            if g.loop is not None and j == g.loop[0]:
                update["turns"] = state.get("turns", 0) + 1
            return update

        if kind == "async":

            async def node_async(state: Any) -> dict[str, Any]:
                tracker.enter(j)
                update = compute(state)
                await asyncio.sleep(delays[j])
                tracker.leave(j)
                return update

            return node_async

        def node_sync(state: Any) -> dict[str, Any]:
            tracker.enter(j)
            tracker.loop_seen.append(has_running_loop())
            update = compute(state)
            if kind == "blocking" and delays[j]:
                time.sleep(delays[j])
            tracker.leave(j)
            return update

        return node_sync

    def make_router(i: int) -> Any:
        def pick(state: Any) -> Any:
            if g.loop is not None and i == g.loop[0] and state["turns"] < g.loop[2]:
                return "back"
            keys = [f"to{t}" for t in choice_of(g, i, state[f"k{i}"])]
            return keys[0] if len(keys) == 1 and g.single_as_str[i] else keys

        if g.router_async[i]:

            async def router_async(state: Any) -> Any:
                await asyncio.sleep(0)
                return pick(state)

            return router_async
        return pick

    for j in range(g.n):
        graph.add_node(f"n{j}", make_node(j), blocking=g.kinds[j] == "blocking")
    for i, j in sorted(g.static):
        graph.add_edge(f"n{i}", f"n{j}")
    for i, targets in sorted(g.routes.items()):
        mapping = {f"to{t}": f"n{t}" for t in targets}
        if g.loop is not None and i == g.loop[0]:
            mapping["back"] = f"n{g.loop[1]}"
        graph.add_conditional_edges(f"n{i}", make_router(i), mapping)
    graph.set_entry_point([f"n{j}" for j in g.entries])
    graph.set_finish_point(f"n{g.n - 1}")
    graph.set_reducer("trace", "append")
    return graph


@dataclass
class Outcome:
    state: dict[str, Any]
    tracker: Tracker
    events: list[Event]


def run(g: GenGraph, mode: str, delays: tuple[float, ...] | None = None) -> Outcome:
    tracker, events = Tracker(), []
    graph = build(g, tracker, events, g.delays if delays is None else delays)
    if mode == "ainvoke":
        state = asyncio.run(graph.ainvoke({}))
    else:
        state = graph.invoke({})
    return Outcome(state, tracker, events)


def check_against_reference(g: GenGraph, out: Outcome) -> None:
    ref = reference(g)
    log = out.tracker.log
    starts = Counter(j for what, j in log if what == "start")
    # each node runs as often as in the reference: once, or once per turn inside a loop
    assert starts == ref.ran
    # the final state equals the reference's (trace compared as a multiset)
    state, expected = dict(out.state), dict(ref.state)
    trace = state.pop("trace")
    assert Counter(trace) == Counter(expected.pop("trace"))
    assert state == expected
    # skipped nodes are reported as skipped (once each, when no loop reruns them)
    skipped = Counter(e.node for e in out.events if e.kind is EventKind.NODE_SKIPPED)
    if g.loop is None:
        assert skipped == Counter(f"n{j}" for j in ref.skipped)
    else:
        assert {f"n{j}" for j in ref.skipped} <= set(skipped)
    completed = Counter(e.node for e in out.events if e.kind is EventKind.NODE_COMPLETED)
    assert completed == Counter({f"n{j}": k for j, k in ref.ran.items()})
    # never before its fired predecessors completed (in a loop: their run of the same turn),
    # and never alongside itself
    ends: Counter[int] = Counter()
    runs: Counter[int] = Counter()
    for what, j in log:
        if what == "end":
            ends[j] += 1
            continue
        assert runs[j] == ends[j], f"n{j} started while running"
        for p, need in ref.needs[j][runs[j]].items():
            assert ends[p] >= need, (p, j, log)
        runs[j] += 1
    if not g.loop:
        in_trace = {name: k for k, name in enumerate(trace)}
        for j, fired in ref.fired.items():
            for p in fired:
                assert in_trace[f"n{p}"] < in_trace[f"n{j}"], (p, j, trace)
    # never more nodes at once than allowed
    limit = g.max_workers if g.parallel else 1
    assert out.tracker.peak <= limit, (out.tracker.peak, limit)


PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(gen_graphs(kinds=("sync",), loops=True))
def test_sync_invoke_matches_reference(g: GenGraph) -> None:
    """invoke() of an all-sync random DAG runs exactly the reference's nodes, in a valid order,
    with the reference's final state, and without any event loop."""
    out = run(g, "invoke")
    check_against_reference(g, out)
    assert out.tracker.loop_seen and not any(out.tracker.loop_seen)


@PROPERTY
@given(
    gen_graphs(kinds=("sync", "async", "async", "blocking"), loops=True),
    st.sampled_from(["ainvoke", "invoke"]),
)
def test_async_run_matches_reference(g: GenGraph, mode: str) -> None:
    """ainvoke() (and invoke() on a private loop) of a random DAG of sync, async and blocking
    nodes with shuffled completion order matches the reference and respects max_workers."""
    out = run(g, mode)
    check_against_reference(g, out)
    if not g.parallel:
        # one at a time in a stable order: other timings give the same order
        shuffled = tuple(random.Random(g.n).sample(g.delays, len(g.delays)))
        again = run(g, mode, delays=shuffled)
        assert again.state["trace"] == out.state["trace"]
        assert again.tracker.log == out.tracker.log


@PROPERTY
@given(gen_graphs(kinds=("sync", "async"), writers=True), st.sampled_from(["ainvoke", "invoke"]))
def test_unreduced_key_conflicts_exactly_when_writers_can_overlap(g: GenGraph, mode: str) -> None:
    """Writes to a key without reducer fail with StateConflictError exactly when two nodes
    that ran are not ordered by a path; otherwise the last writer on the path wins."""
    ref = reference(g)
    ran = sorted(w for w in g.writers if ref.ran[w])
    overlapping = [(a, b) for a, b in combinations(ran, 2) if not related(g, a, b)]
    if not overlapping:
        out = run(g, mode)
        assert out.state.get("x") == ref.state.get("x")
        return
    with pytest.raises(StateConflictError) as info:
        run(g, mode)
    a, b = (int(name[1:]) for name in info.value.nodes)
    assert info.value.key == "x"
    assert {a, b} <= set(ran) and not related(g, a, b)


@settings(max_examples=100, deadline=None)
@given(gen_graphs(kinds=("sync", "blocking"), loops=True))
def test_spec_json_round_trip_of_random_graphs(g: GenGraph) -> None:
    """Any valid random graph's spec survives to_json/from_json unchanged."""
    spec = build(g, Tracker(), [], g.delays).to_spec()
    assert GraphSpec.from_dict(spec.to_dict()) == spec
    again = GraphSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_json() == spec.to_json()
