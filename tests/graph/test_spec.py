"""GraphSpec: immutable plain data; JSON round trips (checked against golden files) and a spec
rebuilt from JSON plus the same registry runs like the original.

Regenerate the golden files with ``BELUGAFLOW_UPDATE_GOLDEN=1 pytest tests/graph/test_spec.py``
and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from belugaflow import (
    CircuitBreaker,
    CompiledGraph,
    Event,
    Graph,
    GraphSpec,
    NodeFailedError,
    Registry,
    RetryPolicy,
    SpecError,
)
from belugaflow.graph import NodeSpec
from belugaflow.testing import no_backoff

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BELUGAFLOW_UPDATE_GOLDEN") == "1"


def golden(name: str, actual: str) -> str:
    """The golden file's text; with BELUGAFLOW_UPDATE_GOLDEN=1, first (re)write it."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    return path.read_text(encoding="utf-8")


# -- the order-processing graph, with every spec feature ----------------------------------------


def validate(state: Any) -> dict[str, Any]:
    return {"valid": state["qty"] > 0, "log": ["validate"]}


def check_inventory(state: Any) -> dict[str, Any]:
    return {"in_stock": state["qty"] <= 5, "log": ["check_inventory"], "best": state["qty"]}


def route_stock(state: Any) -> str:
    return "in_stock" if state["in_stock"] else "out_of_stock"


def pay(state: Any) -> dict[str, Any]:
    return {"paid": True, "log": ["pay"], "best": 1}


def fulfill(state: Any) -> dict[str, Any]:
    return {"shipped": True, "log": ["fulfill"]}


def notify(state: Any) -> dict[str, Any]:
    return {"notified": True, "log": ["notify"]}


def out_of_stock(state: Any) -> dict[str, Any]:
    return {"cancelled": True, "log": ["out_of_stock"]}


def keep_max(current: Any, update: Any) -> Any:
    return update if current is None else max(current, update)


def order_registry() -> Registry:
    registry = Registry()
    for fn in (validate, check_inventory, route_stock, pay, fulfill, notify, out_of_stock):
        registry.register(f"orders.{fn.__name__}", fn)
    registry.register("orders.keep_max", keep_max)
    return registry


def order_graph(registry: Registry | None = None) -> Graph:
    g = Graph(
        "orders",
        version=2,
        max_workers=4,
        max_steps=50,
        timeout=timedelta(seconds=30),
        retry=RetryPolicy(max_attempts=2, initial_interval=0.25, jitter=0.0),
        registry=registry or order_registry(),
    )
    g.add_node("validate", "orders.validate")
    g.add_node(
        "check_inventory",
        "orders.check_inventory",
        retry=RetryPolicy(
            max_attempts=5,
            initial_interval=0.5,
            backoff_coefficient=3,
            max_interval=10,
            jitter=0.2,
            non_retryable_names=("KeyError",),
            max_elapsed=60,
        ),
        timeout=2.5,
    )
    g.add_node("pay", "orders.pay", breaker=CircuitBreaker("payments", failure_threshold=3))
    g.add_node("fulfill", "orders.fulfill", blocking=True)
    g.add_node("notify", "orders.notify")
    g.add_node("out_of_stock", "orders.out_of_stock")
    g.add_edge("validate", "check_inventory")
    g.add_conditional_edges(
        "check_inventory", "orders.route_stock", {"in_stock": "pay", "out_of_stock": "out_of_stock"}
    )
    g.add_edge("pay", "fulfill").add_edge("pay", "notify")
    g.set_entry_point("validate").set_finish_point(["fulfill", "notify", "out_of_stock"])
    # declared in sorted order: to_json() sorts them (see test_json_round_trip_keeps_reducer_order)
    g.set_reducer("best", "orders.keep_max").set_reducer("log", "append")
    return g


def describe(events: list[Event]) -> list[tuple[Any, ...]]:
    return sorted(
        (e.kind.value, e.node or "", e.attempt, json.dumps(e.update, sort_keys=True, default=repr))
        for e in events
    )


# -- golden files ------------------------------------------------------------------------------


def test_spec_json_matches_golden_file() -> None:
    """to_json() of the order graph is exactly the canonical form of the golden JSON file."""
    spec = order_graph().to_spec()
    text = golden("orders.json", json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    assert spec.to_json() == json.dumps(json.loads(text), sort_keys=True)
    assert spec.to_dict() == json.loads(text)


def test_golden_json_rebuilds_an_equal_spec() -> None:
    """from_json() of the golden file gives back a spec equal to the built one."""
    spec = order_graph().to_spec()
    text = (GOLDEN / "orders.json").read_text(encoding="utf-8")
    rebuilt = GraphSpec.from_json(text)
    assert rebuilt == spec
    assert rebuilt.node("check_inventory").retry == RetryPolicy(
        max_attempts=5,
        initial_interval=0.5,
        backoff_coefficient=3,
        max_interval=10,
        jitter=0.2,
        non_retryable_names=("KeyError",),
        max_elapsed=60,
    )
    assert rebuilt.node("fulfill").blocking and rebuilt.node("pay").breaker == "payments"
    assert rebuilt.timeout == 30.0 and rebuilt.version == 2


def test_mermaid_matches_golden_file() -> None:
    """to_mermaid() draws nodes, solid edges, dotted labelled routes, start and end."""
    text = order_graph().to_mermaid()
    assert text == golden("orders.mmd", text)
    assert text.startswith("flowchart TD\n")
    assert '-. "out_of_stock" .->' in text


@pytest.mark.parametrize("qty", [3, 9])
async def test_spec_rebuilt_from_json_runs_identically(qty: int) -> None:
    """CompiledGraph(spec from the golden JSON, same registry) gives the same final state and
    the same events as the graph it was built from."""
    g = order_graph()
    original_events: list[Event] = []
    compiled = g.compile()
    original = CompiledGraph(
        compiled.spec, compiled.registry, breakers=g.breakers, hooks=[original_events.append]
    )
    rebuilt_events: list[Event] = []
    rebuilt = CompiledGraph(
        GraphSpec.from_json((GOLDEN / "orders.json").read_text(encoding="utf-8")),
        g.registry,
        breakers=g.breakers,
        hooks=[rebuilt_events.append],
    )
    first = await original.ainvoke({"qty": qty})
    second = await rebuilt.ainvoke({"qty": qty})
    assert first == second
    assert describe(original_events) == describe(rebuilt_events)
    if qty == 3:
        assert first["log"][:3] == ["validate", "check_inventory", "pay"]
        assert sorted(first["log"][3:]) == ["fulfill", "notify"] and first["best"] == 3
    else:
        assert first["log"] == ["validate", "check_inventory", "out_of_stock"]


# -- plain data --------------------------------------------------------------------------------


def test_spec_is_immutable_and_hashable() -> None:
    """A GraphSpec and its parts are frozen, hashable, and to_dict() hands out copies."""
    spec = order_graph().to_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.nodes[0].ref = "x"  # type: ignore[misc]
    assert isinstance(spec.nodes, tuple) and isinstance(spec.edges, tuple)
    assert hash(spec) == hash(GraphSpec.from_dict(spec.to_dict()))
    data = spec.to_dict()
    data["nodes"].clear()
    data["routers"][0]["routes"].clear()
    assert len(spec.nodes) == 6 and len(spec.routers[0].routes) == 2


def test_spec_round_trips_through_dict_and_json() -> None:
    """from_dict(to_dict()) and from_json(to_json()) give back an equal spec."""
    spec = order_graph().to_spec()
    assert GraphSpec.from_dict(spec.to_dict()) == spec
    assert GraphSpec.from_json(spec.to_json()) == spec
    assert GraphSpec.from_json(spec.to_json()).to_json() == spec.to_json()


def test_minimal_dict_takes_the_defaults() -> None:
    """Fields left out of the data take GraphSpec's defaults."""
    spec = GraphSpec.from_dict(
        {"name": "m", "nodes": [{"name": "a", "ref": "r"}], "entry": ["a"], "finish": ["a"]}
    )
    assert (spec.version, spec.max_workers, spec.parallel, spec.max_steps) == (1, 10, True, 1000)
    assert spec.timeout == 600.0 and spec.retry.max_attempts == 4
    assert spec.nodes == (NodeSpec(name="a", ref="r"),)


def test_no_timeout_round_trips_as_none() -> None:
    """timeout=None (no limit) survives JSON as null, not as the default."""
    g = Graph("t", timeout=None, registry=order_registry())
    g.add_node("a", "orders.notify").set_entry_point("a").set_finish_point("a")
    spec = g.to_spec()
    assert json.loads(spec.to_json())["timeout"] is None
    assert GraphSpec.from_json(spec.to_json()).timeout is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "graph spec JSON"),
        ('{"name": "x", "entry": [], "finish": []}', "missing field 'nodes'"),
        ('{"format": 99, "name": "x"}', "unsupported format 99"),
        ('{"name": "x", "nodes": [{"name": "a"}], "entry": ["a"], "finish": ["a"]}', "'ref'"),
        (
            '{"name": "x", "nodes": [{"name": "a", "ref": "r"}], "entry": ["a"], "finish": ["b"]}',
            "finish point refers to unknown node 'b'",
        ),
    ],
)
def test_malformed_data_is_a_spec_error(text: str, problem: str) -> None:
    """Malformed JSON, missing fields, unknown formats and invalid graphs are SpecErrors."""
    with pytest.raises(SpecError) as info:
        GraphSpec.from_json(text)
    assert problem in str(info.value)


def test_module_level_functions_are_keyed_by_import_path() -> None:
    """A module-level function's registry key is module:qualname; a lambda's is graph-local."""
    g = Graph("keys")
    g.add_node("notify", notify).add_node("anon", lambda s: None).add_edge("notify", "anon")
    spec = g.set_entry_point("notify").set_finish_point("anon").to_spec()
    assert spec.node("notify").ref == f"{__name__}:notify"
    assert spec.node("anon").ref == "keys@1.anon"


# -- order and meaning survive JSON ------------------------------------------------------------


def fan_out_graph(registry: Registry) -> Graph:
    g = Graph("fan", parallel=False, retry=RetryPolicy.none(), registry=registry)
    g.add_node("start", "fan.start").add_node("zeta", "fan.zeta").add_node("alpha", "fan.alpha")
    g.add_conditional_edges("start", "fan.route", {"z": "zeta", "a": "alpha"})
    g.set_entry_point("start").set_finish_point(["zeta", "alpha"]).set_reducer("trace", "append")
    return g


def fan_registry() -> Registry:
    registry = Registry()
    for name in ("start", "zeta", "alpha"):
        registry.register(f"fan.{name}", lambda s, name=name: {"trace": [name]})
    registry.register("fan.route", lambda s: ["z", "a"])
    return registry


def test_json_round_trip_keeps_route_order() -> None:
    """A spec rebuilt from JSON has its routes in declaration order and runs the chosen
    branches in the same order as the original when parallel=False."""
    registry = fan_registry()
    spec = fan_out_graph(registry).to_spec()
    rebuilt = GraphSpec.from_json(spec.to_json())
    original_trace = CompiledGraph(spec, registry).invoke({})["trace"]
    assert original_trace == ["start", "zeta", "alpha"]
    assert CompiledGraph(rebuilt, registry).invoke({})["trace"] == original_trace
    assert rebuilt == spec


def test_json_round_trip_keeps_reducer_order() -> None:
    """A spec rebuilt from its JSON equals the original, whatever order its reducers were
    declared in."""
    g = Graph("r")
    g.add_node("a", notify).set_entry_point("a").set_finish_point("a")
    spec = g.set_reducer("zeta", "append").set_reducer("alpha", "add").to_spec()
    assert GraphSpec.from_json(spec.to_json()) == spec


class Declined(ValueError):
    """A subclass of a non-retryable error type."""


def test_non_retryable_types_keep_their_meaning_through_json() -> None:
    """A node whose policy makes ValueError (and subclasses) non-retryable fails on the first
    attempt, before and after its spec travels through JSON."""
    calls: list[int] = []

    def declines(state: Any) -> None:
        calls.append(1)
        raise Declined("card declined")

    g = Graph("pay", retry=RetryPolicy(max_attempts=3, non_retryable=(ValueError,)))
    g.add_node("charge", declines).set_entry_point("charge").set_finish_point("charge")
    compiled = g.compile()
    rebuilt = CompiledGraph(GraphSpec.from_json(compiled.spec.to_json()), compiled.registry)
    for graph in (compiled, rebuilt):
        calls.clear()
        with no_backoff(), pytest.raises(NodeFailedError):
            graph.invoke({})
        assert len(calls) == 1
