"""The graphs the timeline tests run on both engines, and an app that serves them by name
(``belugaflow workflows show ID --app tests.temporal.timeline_app:orch`` draws them).

``timeline``: ``fetch`` fails once, then succeeds; its route goes to ``ship``, never to
``refund`` (skipped); ``review`` waits for a signal; ``pay`` is declined and parks the run.
``declined``: one node, declined, which fails the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from belugaflow import Graph, Hook, NonRetryableError, Orchestrator, RetryPolicy

RETRY = RetryPolicy(max_attempts=3, initial_interval=0.01)

calls: Counter[str] = Counter()
"""Calls of ``fetch`` per ``order``: each run uses its own order id."""


def fetch(state: dict[str, Any]) -> dict[str, Any]:
    calls[state["order"]] += 1
    if calls[state["order"]] == 1:
        raise ConnectionError("gateway reset")
    return {"fetched": True}


def route(state: dict[str, Any]) -> str:
    return "ship"


def ship(state: dict[str, Any]) -> dict[str, Any]:
    return {"shipped": True}


def refund(state: dict[str, Any]) -> dict[str, Any]:
    return {"refunded": True}


def pay(state: dict[str, Any]) -> dict[str, Any]:
    raise NonRetryableError("card declined")


def timeline_graph(graph: Graph) -> Graph:
    graph.add_node("fetch", fetch).add_node("ship", ship).add_node("refund", refund)
    graph.add_wait("review", signal="review")
    graph.add_node("pay", pay, on_failure="park")
    graph.add_conditional_edges("fetch", route, {"ship": "ship", "refund": "refund"})
    graph.add_edge("ship", "review").add_edge("review", "pay")
    return graph.set_entry_point("fetch").set_finish_point(["pay", "refund"])


def declined_graph(graph: Graph) -> Graph:
    graph.add_node("charge", pay)
    return graph.set_entry_point("charge").set_finish_point("charge")


def graphs(hooks: Sequence[Hook] = ()) -> tuple[Graph, Graph]:
    """Both graphs, built in process (with ``hooks``) from a registry of their own."""
    return (
        timeline_graph(Graph("timeline", retry=RETRY, timeout=None, hooks=hooks)),
        declined_graph(Graph("declined", retry=RETRY, hooks=hooks)),
    )


orch = Orchestrator()
timeline = timeline_graph(orch.create_graph("timeline", retry=RETRY, timeout=None))
declined = declined_graph(orch.create_graph("declined", retry=RETRY))
