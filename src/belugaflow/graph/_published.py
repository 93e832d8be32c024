"""What a client outside Python needs to drive a graph's runs: the JSON Schemas of its input,
result, signals, updates and queries — the same for every graph, filled from its spec."""

from __future__ import annotations

from typing import Any

from ._board import ACTIONS, RESOLVE
from ._spec import GraphSpec

__all__ = ["PROGRESS_SCHEMA", "RESOLVE_SCHEMA", "graph_schema"]

_NAMES = {"type": "array", "items": {"type": "string"}}

PROGRESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What the run is doing: the answer to the 'progress' query.",
    "properties": {
        "graph": {"type": "string"},
        "version": {"type": "integer"},
        "status": {
            "enum": [
                "starting",
                "running",
                "waiting",
                "parked",
                "cancelling",
                "completed",
                "failed",
                "cancelled",
            ]
        },
        "running": _NAMES,
        "waiting": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "node": {"type": "string"},
                    "signal": {"type": "string"},
                    "key": {"type": "string"},
                    "until": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
        "parked": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "node": {"type": "string"},
                    "error": {"type": "string"},
                    "attempts": {"type": "integer"},
                    "actions": _NAMES,
                },
            },
        },
        "completed": _NAMES,
        "dropped_signals": _NAMES,
        "state": {"type": "object", "description": "The state; long values summarized."},
    },
}

RESOLVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An operator's decision on a parked node.",
    "properties": {
        "node": {"type": "string", "description": "The parked node; optional if only one is."},
        "action": {"enum": list(ACTIONS)},
        "update": {"type": "object", "description": "For 'skip': the node's stand-in result."},
    },
    "required": ["action"],
    "additionalProperties": False,
}


def graph_schema(spec: GraphSpec) -> dict[str, Any]:
    """The published schema of ``spec``'s runs, as the workflow type ``spec.name``."""
    signals: dict[str, Any] = {
        name: node.wait.schema if node.wait is not None and node.wait.schema else {}
        for name, node in spec.waits.items()
    }
    signals[RESOLVE] = RESOLVE_SCHEMA
    return {
        "workflow_type": spec.name,
        "kind": "graph",
        "version": spec.version,
        "input": spec.input_schema or {"type": "object"},
        "result": {"type": "object", "description": "The final state."},
        "signals": signals,
        "updates": {
            name: {"input": schema, "result": PROGRESS_SCHEMA} for name, schema in signals.items()
        },
        "queries": {"progress": PROGRESS_SCHEMA},
    }
