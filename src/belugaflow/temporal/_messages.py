"""What travels between the graph workflow, its activities and the client (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["NODE_ACTIVITY", "ROUTE_ACTIVITY", "GraphInput", "NodeCall", "RouteCall"]

NODE_ACTIVITY = "belugaflow.node"
ROUTE_ACTIVITY = "belugaflow.route"
SUBGRAPH_TAG = "__belugaflow_subgraph__"
"""Marks a sub-graph node's result on the wire: ``{SUBGRAPH_TAG: [before, after]}``."""


@dataclass(frozen=True, slots=True)
class GraphInput:
    """A graph run: the spec (``GraphSpec.to_dict()``) travels with it, so a run keeps the
    definition it started with even after a new version is registered."""

    spec: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeCall:
    """One node to run: the callable's registry key and the state it reads."""

    graph: str
    node: str
    ref: str
    state: dict[str, Any]
    blocking: bool = False


@dataclass(frozen=True, slots=True)
class RouteCall:
    """One router to call after ``node``."""

    graph: str
    node: str
    ref: str
    state: dict[str, Any]
