"""What travels between the graph workflow, its activities and the client.

Messages are plain JSON objects on the wire, and plain dicts in code: the SDK decodes a
dataclass argument through ``typing.get_type_hints`` on every call, which cost more than the
rest of a node's round trip in the worker. The ``TypedDict``\\ s below document their keys for
the type checker; the workflow and activities declare them as ``Mapping[str, Any]``, which the
SDK passes through as decoded.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "GRAPH_WORKFLOW",
    "NODE_ACTIVITY",
    "ROUTE_ACTIVITY",
    "GraphInput",
    "NodeCall",
    "RouteCall",
]

GRAPH_WORKFLOW = "belugaflow.graph"
"""The workflow type of a run that carries its spec in its input (``GraphWorkflow``)."""
NODE_ACTIVITY = "belugaflow.node"
ROUTE_ACTIVITY = "belugaflow.route"
SUBGRAPH_TAG = "__belugaflow_subgraph__"
"""Marks a sub-graph node's result on the wire: ``{SUBGRAPH_TAG: [before, after]}``."""


class GraphInput(TypedDict):
    """A graph run: the spec (``GraphSpec.to_dict()``) travels with it, so a run keeps the
    definition it started with even after a new version is registered."""

    spec: dict[str, Any]
    state: dict[str, Any]
    heartbeat_timeout: NotRequired[float]
    """Seconds a node's worker may stay silent; default ``DEFAULTS.heartbeat_timeout``."""


class NodeCall(TypedDict):
    """One node to run: the callable's registry key, the state it reads and its policies
    (keys present only when set, to keep every scheduled activity light)."""

    graph: str
    node: str
    ref: str
    state: dict[str, Any]
    blocking: bool
    timeout: NotRequired[float]
    """Seconds one attempt may take; the activity enforces it itself."""
    breaker: NotRequired[str]
    """The circuit breaker guarding the node, by name, in the worker's registry."""


class RouteCall(TypedDict):
    """One router to call after ``node``."""

    graph: str
    node: str
    ref: str
    state: dict[str, Any]
