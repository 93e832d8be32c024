"""The order graph::

validate → check_inventory ─ in_stock ─→ process_payment → fulfill → notify
                           └ out_of_stock ──────────────────────────→ notify
"""

from __future__ import annotations

from belugaflow import Graph, Orchestrator

from .db import Store
from .nodes import OrderNodes, route_inventory

__all__ = ["build_order_graph"]


def build_order_graph(
    orch: Orchestrator, store: Store, *, nodes: OrderNodes | None = None
) -> Graph:
    """The order-processing graph, with the orchestrator's defaults (retries, timeouts).

    Args:
        orch: Supplies the defaults; one orchestrator holds one ``order_processing`` graph.
        store: The shop database.
        nodes: The node functions; default ``OrderNodes(store)`` (pass a subclass to change
            a step, e.g. in tests).
    """
    nodes = nodes if nodes is not None else OrderNodes(store)
    graph = orch.create_graph("order_processing")
    # SQLite calls block: blocking=True runs these nodes in worker threads.
    graph.add_node("validate", nodes.validate, blocking=True)
    graph.add_node("check_inventory", nodes.check_inventory, blocking=True)
    # A timed-out attempt is abandoned, not killed; charge() is idempotent, so its retry is safe.
    graph.add_node("process_payment", nodes.process_payment, blocking=True, timeout=30.0)
    graph.add_node("fulfill", nodes.fulfill, blocking=True)
    graph.add_node("notify", nodes.notify)  # no I/O here: runs inline

    graph.add_edge("validate", "check_inventory")
    graph.add_conditional_edges(
        "check_inventory",
        route_inventory,
        {"in_stock": "process_payment", "out_of_stock": "notify"},
    )
    graph.add_edge("process_payment", "fulfill")
    graph.add_edge("fulfill", "notify")
    graph.set_entry_point(["validate"])
    graph.set_finish_point(["notify"])
    return graph
