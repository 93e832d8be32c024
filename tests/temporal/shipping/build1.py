"""Build 1: reserve, wait for ``approve``, ship."""

from __future__ import annotations

from pathlib import Path

from belugaflow import Orchestrator, load_config

BUILD = "1"

orch = Orchestrator.from_config(load_config(Path(__file__).with_name("config.yaml")))


def reserve(state: dict[str, object]) -> dict[str, object]:
    return {"reserve": BUILD}


def ship(state: dict[str, object]) -> dict[str, object]:
    return {"ship": BUILD}


graph = orch.create_graph("shipping")
graph.add_node("reserve", reserve)
graph.add_wait("approve", signal="approve")
graph.add_node("ship", ship)
graph.add_edge("reserve", "approve").add_edge("approve", "ship")
graph.set_entry_point("reserve").set_finish_point("ship").compile()
