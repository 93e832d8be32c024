"""Compile-time validation: every structural problem is a SpecError, found before any node runs."""

from __future__ import annotations

from typing import Any

import pytest

from belugaflow import CompiledGraph, Graph, GraphSpec, Registry, RetryPolicy, SpecError
from belugaflow.graph import EdgeSpec, NodeSpec, RouterSpec


def noop(state: Any) -> None:
    return None


def builder(*names: str, **kwargs: Any) -> Graph:
    g = Graph("v", retry=RetryPolicy.none(), **kwargs)
    for name in names:
        g.add_node(name, noop)
    return g


def problems_of(g: Graph) -> list[str]:
    with pytest.raises(SpecError) as info:
        g.compile()
    err = info.value
    assert err.code == "spec_invalid" and err.subject == "graph 'v'"
    assert f"({len(err.problems)} problem" in str(err)
    for problem in err.problems:
        assert f"  - {problem}" in str(err)
    return err.problems


def test_unknown_names_are_all_listed_in_one_error() -> None:
    """Edges from and to nothing, routes to nothing, routers on nothing and unknown entry and
    finish points are each reported, all in one SpecError."""
    g = builder("a", "b")
    g.add_edge("a", "ghost").add_edge("phantom", "b")
    g.add_conditional_edges("a", noop, {"x": "b", "y": "nowhere"})
    g.add_conditional_edges("spectre", noop, ["b"])
    g.set_entry_point(["a", "void"]).set_finish_point(["b", "limbo"])
    problems = problems_of(g)
    assert problems == [
        "edge 'a' -> 'ghost' refers to unknown node 'ghost'",
        "edge 'phantom' -> 'b' refers to unknown node 'phantom'",
        "route 'y' of the router after 'a' refers to unknown node 'nowhere'",
        "a conditional edge refers to unknown node 'spectre'",
        "entry point refers to unknown node 'void'",
        "finish point refers to unknown node 'limbo'",
    ]


def test_unreachable_nodes_and_finish_points_are_reported() -> None:
    """Nodes and finish points that no edge or route from an entry point reaches are errors."""
    g = builder("a", "b", "island", "end")
    g.add_edge("a", "b").add_edge("island", "end")
    g.set_entry_point("a").set_finish_point(["b", "end"])
    assert problems_of(g) == [
        "node 'island' cannot be reached from the entry points",
        "finish point 'end' cannot be reached from the entry points",
    ]


def test_nodes_reached_only_through_routes_are_reachable() -> None:
    """A node reached only through a conditional route is reachable."""
    g = builder("a", "b")
    g.add_conditional_edges("a", lambda s: "b", ["b"])
    g.set_entry_point("a").set_finish_point("b")
    assert g.compile().spec.routers[0].routes == (("b", "b"),)


def test_unconditional_cycle_is_rejected_with_its_path() -> None:
    """A cycle of plain edges is rejected, naming the cycle; through a router it is allowed."""
    g = builder("a", "b", "c")
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", "b")
    g.set_entry_point("a").set_finish_point("c")
    (problem,) = problems_of(g)
    assert problem.startswith("unconditional cycle 'b' -> 'c' -> 'b'")
    assert "add_conditional_edges" in problem

    ok = builder("a", "b", "c")
    ok.add_edge("a", "b").add_edge("b", "c")
    ok.add_conditional_edges("c", lambda s: "done", {"again": "b", "done": "a"})
    ok.set_entry_point("a").set_finish_point("c")
    ok.compile()


def test_self_edge_is_an_unconditional_cycle() -> None:
    """An unconditional edge from a node to itself is rejected."""
    g = builder("a").add_edge("a", "a").set_entry_point("a").set_finish_point("a")
    (problem,) = problems_of(g)
    assert "unconditional cycle 'a' -> 'a'" in problem


def test_duplicate_node_is_rejected_by_builder_and_by_spec() -> None:
    """Adding a node name twice fails at once; a spec with a duplicate node is a SpecError."""
    g = builder("a")
    with pytest.raises(ValueError, match="node 'a' is already defined"):
        g.add_node("a", noop)
    with pytest.raises(SpecError, match="node 'a' is defined 2 times"):
        GraphSpec(
            name="v",
            nodes=(NodeSpec(name="a", ref="r"), NodeSpec(name="a", ref="r")),
            entry=("a",),
            finish=("a",),
        )


def test_structural_mistakes_are_reported() -> None:
    """Duplicate edges, two routers on one node, a router without routes and a graph without
    entry or finish point are each reported."""
    g = builder("a", "b")
    g.add_edge("a", "b").add_edge("a", "b")
    g.add_conditional_edges("a", noop, ["b"]).add_conditional_edges("a", noop, ["b"])
    g.add_conditional_edges("b", noop, {})
    problems = problems_of(g)
    assert "edge 'a' -> 'b' is added 2 times" in problems
    assert "node 'a' has 2 routers; merge them into one" in problems
    assert "the router after 'b' has no routes" in problems
    assert "the graph has no entry point (set_entry_point)" in problems
    assert "the graph has no finish point (set_finish_point)" in problems


def test_empty_graph_is_rejected() -> None:
    """A graph without nodes is invalid."""
    g = builder().set_entry_point([]).set_finish_point([])
    assert "the graph has no nodes (add_node)" in problems_of(g)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, "max_workers must be >= 1, got 0"),
        ({"max_steps": 0}, "max_steps must be >= 1, got 0"),
        ({"version": 0}, "version must be >= 1, got 0"),
    ],
)
def test_bad_settings_are_spec_problems(kwargs: dict[str, Any], message: str) -> None:
    """Out-of-range graph settings are reported by compile()."""
    g = builder("a", **kwargs).set_entry_point("a").set_finish_point("a")
    assert message in problems_of(g)


def test_bad_timeouts_fail_when_given() -> None:
    """Zero or negative graph and node timeouts are rejected where they are passed."""
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Graph("v", timeout=0)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        builder().add_node("a", noop, timeout=-1)


def test_unknown_reducer_name_is_rejected() -> None:
    """A reducer that is neither built in nor registered is a SpecError naming the built-ins."""
    g = builder("a").set_entry_point("a").set_finish_point("a").set_reducer("k", "concat")
    (problem,) = problems_of(g)
    assert "'concat'" in problem and "add, append, merge" in problem


def test_nothing_runs_when_the_graph_is_invalid() -> None:
    """Validation happens before any node runs: invoke() of an invalid graph has no effect."""
    ran: list[str] = []
    g = Graph("v")
    g.add_node("a", lambda s: ran.append("a"))
    g.add_edge("a", "ghost").set_entry_point("a").set_finish_point("a")
    with pytest.raises(SpecError):
        g.invoke({})
    assert ran == []


def test_unresolvable_names_fail_when_the_spec_is_compiled() -> None:
    """CompiledGraph reports every callable, router, reducer and breaker name that the registry
    cannot resolve."""
    spec = GraphSpec(
        name="v",
        nodes=(NodeSpec(name="a", ref="mod:a", breaker="db"), NodeSpec(name="b", ref="mod:b")),
        edges=(EdgeSpec("a", "b"),),
        routers=(RouterSpec(source="b", ref="mod:route", routes=(("x", "a"),)),),
        entry=("a",),
        finish=("b",),
        reducers=(("k", "mod:reduce"),),
    )
    registry = Registry()
    registry.register("mod:a", noop)
    with pytest.raises(SpecError) as info:
        CompiledGraph(spec, registry)
    problems = info.value.problems
    assert len(problems) == 4
    assert "node 'a': no circuit breaker named 'db'" in problems
    assert any("node 'b': no callable registered as 'mod:b'" in p for p in problems)
    assert any("router after 'b'" in p and "'mod:route'" in p for p in problems)
    assert any("reducer of 'k'" in p and "'mod:reduce'" in p for p in problems)


def test_compiled_builder_is_frozen() -> None:
    """After compile() (or a first run) the builder refuses changes."""
    g = builder("a").set_entry_point("a").set_finish_point("a")
    g.invoke({})
    with pytest.raises(RuntimeError, match="compiled"):
        g.add_node("b", noop)
    with pytest.raises(RuntimeError, match="compiled"):
        g.add_edge("a", "a")


def test_registry_refuses_to_rebind_a_key() -> None:
    """Two different callables under one node name of one graph version are refused."""
    registry = Registry()
    Graph("v", registry=registry).add_node("a", lambda s: None)
    with pytest.raises(ValueError, match="already registered"):
        Graph("v", registry=registry).add_node("a", lambda s: None)
    Graph("v", registry=registry, version=2).add_node("a", lambda s: None)


def test_every_problem_is_listed_even_with_unknown_names() -> None:
    """An unknown edge target does not hide an unconditional cycle or unreachable nodes
    elsewhere in the same graph: one SpecError lists them all."""
    g = builder("a", "b", "c", "island")
    g.add_edge("a", "ghost").add_edge("b", "c").add_edge("c", "b")
    g.set_entry_point("a").set_finish_point("a")
    problems = problems_of(g)
    assert "edge 'a' -> 'ghost' refers to unknown node 'ghost'" in problems
    assert any(p.startswith("unconditional cycle") for p in problems)
    assert "node 'island' cannot be reached from the entry points" in problems


def test_a_loop_without_a_single_head_is_rejected() -> None:
    """A loop of two routes entered at both of its nodes from outside has no head."""
    g = Graph("two-heads")
    for name in ("a", "b", "x", "y"):
        g.add_node(name, lambda s: None)
    g.add_edge("a", "x").add_edge("b", "y")
    g.add_conditional_edges("x", lambda s: "y", ["y"])
    g.add_conditional_edges("y", lambda s: "x", ["x"])
    g.set_entry_point(["a", "b"]).set_finish_point("y")
    with pytest.raises(SpecError, match=r"the loop through 'x', 'y' has no single head"):
        g.compile()
