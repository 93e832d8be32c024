"""The order graph: the use case as one graph, review and compensation included::

    validate → check_inventory ─ out_of_stock ──────────────────────────────────→ notify
                               └ in_stock → decide ─ approve ─→ process_payment → fulfill ↗
                                                   ├ review → await_review ─ approve ↗
                                                   │            │          └ reject ─→ release ↗
                                                   │            └ timeout → review_timeout ↗
                                                   └ reject ──────────────────→ release ↗

``await_review`` waits for a ``review`` signal (``{"verdict": "approve" | "reject", "note":
...}``). Cancelling a run — or a run that fails — refunds the payment and releases the
reservation, if they happened (the compensations of ``process_payment`` and
``check_inventory``). Run it in process (``graph.start``) or durably: a worker of the app serves
it as the workflow type ``order-processing``.
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import timedelta
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from belugaflow import Graph, Orchestrator

from .activities import Decider, DecisionInput, default_decide
from .db import Store
from .nodes import OrderNodes, State, Update, route_decision, route_inventory, route_review

__all__ = ["GRAPH_NAME", "OrderInput", "Review", "build_order_graph"]

GRAPH_NAME = "order-processing"
"""The graph's name: its workflow type on Temporal."""


class OrderInput(TypedDict):
    """What a run of the graph starts from."""

    order_id: str
    product_id: str
    quantity: NotRequired[int]
    customer_tier: NotRequired[str]
    """``new``, ``standard``, ``gold``...: the decision reads it."""
    review_threshold: NotRequired[int | None]
    """Cents: an order worth more always waits for a reviewer."""


class Review(TypedDict):
    """What a reviewer sends as the ``review`` signal."""

    verdict: Literal["approve", "reject"]
    note: NotRequired[str]


def decision_node(decide: Decider) -> Any:
    """The ``decide`` node: ``decide`` on the order's value and the customer's tier."""

    async def decide_order(state: State) -> Update:
        order = DecisionInput(
            state["order_id"],
            state["product_id"],
            state["quantity"],
            state["amount"],
            state.get("customer_tier", "standard"),
        )
        decision = decide(order)
        if inspect.isawaitable(decision):
            decision = await decision
        record = dataclasses.asdict(decision)
        return {"decision": {**record, "problems": list(decision.problems)}}  # JSON, as durably

    return decide_order


def build_order_graph(
    orch: Orchestrator,
    store: Store,
    *,
    nodes: OrderNodes | None = None,
    decide: Decider | None = None,
    review_timeout: float | timedelta = timedelta(hours=24),
    version: int = 1,
) -> Graph:
    """The order-processing graph, with the orchestrator's defaults (retries, timeouts).

    Args:
        orch: Supplies the defaults; a worker of ``orch`` serves the graph by its name.
        store: The shop database.
        nodes: The node functions; default ``OrderNodes(store)`` (pass a subclass to change
            a step, e.g. in tests).
        decide: The decision function; default :func:`~.activities.default_decide`.
        review_timeout: How long ``await_review`` waits for a reviewer.
        version: The graph's version; a changed graph needs a new one.
    """
    nodes = nodes if nodes is not None else OrderNodes(store)
    review = (
        review_timeout.total_seconds()
        if isinstance(review_timeout, timedelta)
        else float(review_timeout)
    )
    # The run may take its usual time plus the review's: a waiting order never times out whole.
    budget = None if orch.graph_timeout is None else orch.graph_timeout + review
    graph = orch.create_graph(GRAPH_NAME, input_schema=OrderInput, version=version, timeout=budget)
    # SQLite calls block: blocking=True runs these nodes in worker threads. Each side effect
    # is idempotent per order, and each one that can be undone names its compensation.
    graph.add_node("validate", nodes.validate, blocking=True)
    graph.add_node(
        "check_inventory", nodes.check_inventory, blocking=True, compensate=nodes.release
    )
    graph.add_node("decide", decision_node(decide or default_decide))
    graph.add_wait(
        "await_review",
        signal="review",
        timeout=review,
        on_timeout="review_timeout",
        schema=Review,
    )
    graph.add_node("review_timeout", nodes.review_timeout)
    # A timed-out attempt is abandoned, not killed; charge() is idempotent, so its retry is safe.
    graph.add_node(
        "process_payment",
        nodes.process_payment,
        blocking=True,
        timeout=30.0,
        compensate=nodes.refund,
    )
    graph.add_node("fulfill", nodes.fulfill, blocking=True)
    graph.add_node("release", nodes.release, blocking=True)
    graph.add_node("notify", nodes.notify)  # no I/O here: runs inline

    graph.add_edge("validate", "check_inventory")
    graph.add_conditional_edges(
        "check_inventory", route_inventory, {"in_stock": "decide", "out_of_stock": "notify"}
    )
    graph.add_conditional_edges(
        "decide",
        route_decision,
        {"approve": "process_payment", "review": "await_review", "reject": "release"},
    )
    graph.add_conditional_edges(
        "await_review", route_review, {"approve": "process_payment", "reject": "release"}
    )
    graph.add_edge("review_timeout", "release")
    graph.add_edge("process_payment", "fulfill")
    graph.add_edge("fulfill", "notify")
    graph.add_edge("release", "notify")
    graph.set_entry_point(["validate"])
    graph.set_finish_point(["notify"])
    return graph
