"""The benchmark workloads W1–W4, each with its bare-Python baseline.

Everything is built through ``Orchestrator()`` so the config defaults are in force: 3 retries
(4 attempts) per step and whole-run timeouts of 300 s (chain) and 600 s (graph).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from belugaflow import Chain, Graph, Orchestrator

__all__ = [
    "W3_NODES",
    "W3_SLEEP",
    "W4_LAYERS",
    "W4_WIDTH",
    "bare_chain10",
    "bare_fanout100",
    "bare_layered",
    "bare_order5",
    "build_chain10",
    "build_fanout",
    "build_fanout100",
    "build_layered",
    "build_order5",
]

State = Mapping[str, Any]
Update = dict[str, Any]
Node = Callable[[State], Update]

# -- W1: a chain of 10 trivial sync steps -------------------------------------------------------


def step(value: dict[str, int]) -> dict[str, int]:
    """A W1 step: the dict with ``counter`` + 1."""
    return {"counter": value["counter"] + 1}


def build_chain10(orch: Orchestrator) -> Chain:
    return orch.create_chain([step] * 10, name="chain10")


def bare_chain10(value: dict[str, int]) -> dict[str, int]:
    """W1 as a plain loop of function calls."""
    for fn in _CHAIN10:
        value = fn(value)
    return value


_CHAIN10 = (step,) * 10

# -- W2: a 5-node linear order graph -------------------------------------------------------------


def validate(state: State) -> Update:
    return {"valid": True}


def check_inventory(state: State) -> Update:
    return {"in_stock": True}


def process_payment(state: State) -> Update:
    return {"payment_id": "pay-1"}


def fulfill(state: State) -> Update:
    return {"fulfillment_id": "ful-1"}


def notify(state: State) -> Update:
    return {"status": "completed"}


_ORDER5: tuple[Node, ...] = (validate, check_inventory, process_payment, fulfill, notify)


def build_order5(orch: Orchestrator) -> Graph:
    graph = orch.create_graph("order5")
    for fn in _ORDER5:
        graph.add_node(fn.__name__, fn)
    for a, b in itertools.pairwise(_ORDER5):
        graph.add_edge(a.__name__, b.__name__)
    graph.set_entry_point([_ORDER5[0].__name__])
    graph.set_finish_point([_ORDER5[-1].__name__])
    return graph


def bare_order5(input: State) -> Update:
    """W2 as a plain loop: call each node, merge its update."""
    state = dict(input)
    for fn in _ORDER5:
        state.update(fn(state))
    return state


# -- W3: fan out to 100 parallel async nodes that sleep 10 ms, then join -------------------------

W3_NODES = 100
W3_SLEEP = 0.01


def _sleeper(i: int) -> Callable[[State], Awaitable[Update]]:
    async def sleeper(state: State) -> Update:
        await asyncio.sleep(W3_SLEEP)
        return {"values": i}

    return sleeper


def _join(state: State) -> Update:
    return {"total": sum(state["values"]), "count": len(state["values"])}


def build_fanout(
    orch: Orchestrator,
    name: str,
    branches: Sequence[Callable[[State], Any]],
    *,
    max_workers: int,
) -> Graph:
    """``start`` → every branch at once (each appends to ``values``) → ``join`` (count, total)."""
    graph = orch.create_graph(name, max_workers=max_workers)
    graph.add_node("start", lambda state: {"started": True})
    graph.add_node("join", _join)
    graph.set_reducer("values", "append")
    for i, branch in enumerate(branches):
        graph.add_node(f"branch{i}", branch)
        graph.add_edge("start", f"branch{i}")
        graph.add_edge(f"branch{i}", "join")
    return graph.set_entry_point("start").set_finish_point("join")


def build_fanout100(orch: Orchestrator, max_workers: int) -> Graph:
    sleepers = [_sleeper(i) for i in range(W3_NODES)]
    return build_fanout(orch, f"fanout100_w{max_workers}", sleepers, max_workers=max_workers)


async def bare_fanout100(max_workers: int) -> Update:
    """W3 in bare asyncio: a semaphore, ``gather``, then the join."""
    limit = asyncio.Semaphore(max_workers)
    state: dict[str, Any] = {"started": True, "values": []}

    async def one(fn: Callable[[State], Awaitable[Update]]) -> None:
        async with limit:
            state["values"].append((await fn(state))["values"])

    await asyncio.gather(*(one(_sleeper(i)) for i in range(W3_NODES)))
    state.update(_join(state))
    return state


# -- W4: 10 layers x 100 sync nodes, each node after every node of the layer before --------------

W4_LAYERS = 10
W4_WIDTH = 100


def _writer(key: str) -> Node:
    def node(state: State) -> Update:
        return {key: 1}

    return node


def _layer_names(layer: int) -> list[str]:
    return [f"n{layer}_{j}" for j in range(W4_WIDTH)]


def build_layered(orch: Orchestrator, name: str = "layered1000") -> Graph:
    """1000 nodes, 9 x 100 x 100 = 90,000 edges."""
    graph = orch.create_graph(name)
    layers = [_layer_names(layer) for layer in range(W4_LAYERS)]
    for names in layers:
        for node in names:
            graph.add_node(node, _writer(node))
    for previous, names in itertools.pairwise(layers):
        for source in previous:
            for target in names:
                graph.add_edge(source, target)
    graph.set_entry_point(layers[0])
    graph.set_finish_point(layers[-1])
    return graph


_LAYERED: tuple[tuple[Node, ...], ...] = tuple(
    tuple(_writer(n) for n in _layer_names(layer)) for layer in range(W4_LAYERS)
)


def bare_layered(input: State) -> Update:
    """W4 as plain loops: call every node of each layer in turn, merge its update."""
    state = dict(input)
    for layer in _LAYERED:
        for fn in layer:
            state.update(fn(state))
    return state
