"""The order graph: the use case as one graph, review and compensation included::

    validate → check_inventory ─ out_of_stock ──────────────────────────────────→ notify
                               └ in_stock → decide ─ approve ─→ process_payment → fulfill ↗
                                                   ├ review → await_review ─ approve ↗
                                                   │            │          └ reject ─→ release ↗
                                                   │            └ timeout → review_timeout ↗
                                                   └ reject ──────────────────→ release ↗

``await_review`` waits for a ``review`` signal (``{"verdict": "approve" | "reject", "note":
...}``). With a memory (:mod:`~.memory`), ``decide`` recalls the most similar past orders of
the customer's tier and how they ended, and the decision record names them; ``notify`` saves
the order's outcome (completed, or rejected by the reviewer) for the next ones. Cancelling a
run — or a run that fails — refunds the payment and releases the reservation, if they
happened (the compensations of ``process_payment`` and ``check_inventory``). Run it in
process (``graph.start``) or durably: a worker of the app serves it as the workflow type
``order-processing``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from datetime import timedelta
from typing import Any, Literal, NotRequired, cast

from typing_extensions import TypedDict

from belugaflow import Graph, Orchestrator
from belugaflow.memory import Recalled, StoreUnavailableError, VectorMemory, reads

from .activities import Decider, DecisionInput, default_decide
from .db import Store
from .memory import (
    KIND,
    ORDER_TEXT,
    SCOPE,
    others,
    past_orders,
    remember_outcome,
    shown,
    similar_rejected,
)
from .nodes import OrderNodes, State, Update, route_decision, route_inventory, route_review

__all__ = ["GRAPH_NAME", "OrderInput", "Review", "build_order_graph"]

_log = logging.getLogger(__name__)

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


def decision_node(decide: Decider, memory: VectorMemory | None = None) -> Any:
    """The ``decide`` node: ``decide`` on the order's value and the customer's tier and, with
    a ``memory``, on the most similar past orders of that tier and how they ended.

    The node declares what it reads (:func:`~belugaflow.memory.reads`): the scope
    ``orders:<tier>``, queried with the order's text (the order's own earlier outcome, when it
    runs again, is left out). The decision record says what was
    recalled (``recalled``: entry ids, order ids, outcomes, similarity) and how many of those
    orders count against this one (``similar_rejected``). A memory that cannot be reached
    leaves the decision to the order alone, and the record says why (``memory_problem``).
    """

    async def decide_order(state: State, recalled: Recalled | None = None) -> Update:
        if recalled is not None:
            recalled = others(recalled, state["order_id"])
        past = past_orders(recalled) if recalled is not None else []
        order = DecisionInput(
            state["order_id"],
            state["product_id"],
            state["quantity"],
            state["amount"],
            state.get("customer_tier", "standard"),
            similar_rejected=similar_rejected(past),
            recalled=shown(recalled).text() if recalled is not None else "",
        )
        decision = decide(order)
        if inspect.isawaitable(decision):
            decision = await decision
        record = {**dataclasses.asdict(decision), "problems": list(decision.problems)}
        if recalled is not None:
            record["recalled"] = [p.to_dict() for p in past]
            record["similar_rejected"] = order.similar_rejected
        return {"decision": record}  # JSON, as durably

    async def decide_alone(state: State) -> Update:
        return await decide_order(state)

    if memory is None:
        return decide_alone
    with_memory = reads(memory, SCOPE, query=ORDER_TEXT, kind=KIND)(decide_order)

    async def decide_with_memory(state: State) -> Update:
        try:
            return cast(Update, await with_memory(state))
        except StoreUnavailableError as error:
            # Memory informs the decision; it is not worth failing (and releasing) the order.
            _log.warning("order %s: decided without memory: %s", state["order_id"], error)
            update = await decide_alone(state)
            update["decision"]["memory_problem"] = str(error)
            return update

    return decide_with_memory


def notify_node(nodes: OrderNodes, memory: VectorMemory | None = None) -> Any:
    """The ``notify`` node: ``nodes.notify`` and, with a ``memory``, the order's outcome saved
    for the decisions of similar orders (idempotent: the id is the order id and outcome).

    A memory that cannot be written is logged and does not fail the order: the order is
    decided and done (paid and shipped, or released), and a failed run would refund it.
    """
    if memory is None:
        return nodes.notify

    async def notify(state: State) -> Update:
        update = nodes.notify(state)
        try:
            remembered = await remember_outcome(memory, {**state, **update})
        except Exception as error:  # see the docstring
            _log.warning(
                "order %s: its outcome was not saved to memory: %r", state["order_id"], error
            )
            return update
        return update if remembered is None else {**update, "remembered": remembered}

    return notify


def build_order_graph(
    orch: Orchestrator,
    store: Store,
    *,
    nodes: OrderNodes | None = None,
    decide: Decider | None = None,
    memory: VectorMemory | None = None,
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
        memory: The order memory (:func:`~.memory.order_memory`): ``decide`` recalls similar
            past orders, ``notify`` saves each outcome. None: decisions without memory. The
            graph is the same either way (same nodes, name and version).
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
    graph.add_node("decide", decision_node(decide or default_decide, memory))
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
    # Without memory no I/O: runs inline; with it, async (the memory works off the loop).
    graph.add_node("notify", notify_node(nodes, memory))

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
