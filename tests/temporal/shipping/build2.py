"""Build 2: the same graph with an address check first, still version 1."""

from __future__ import annotations

from pathlib import Path

from belugaflow import Orchestrator, load_config

BUILD = "2"

orch = Orchestrator.from_config(load_config(Path(__file__).with_name("config.yaml")))


def reserve(state: dict[str, object]) -> dict[str, object]:
    return {"reserve": BUILD}


def check_address(state: dict[str, object]) -> dict[str, object]:
    return {"check_address": BUILD}


def ship(state: dict[str, object]) -> dict[str, object]:
    return {"ship": BUILD}


graph = orch.create_graph("shipping")
graph.add_node("reserve", reserve)
graph.add_wait("approve", signal="approve")
graph.add_node("check_address", check_address)
graph.add_node("ship", ship)
graph.add_edge("check_address", "reserve").add_edge("reserve", "approve")
graph.add_edge("approve", "ship")
graph.set_entry_point("check_address").set_finish_point("ship").compile()
