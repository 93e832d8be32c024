"""The steps of an order. Each node reads the state and returns the keys it adds.

The nodes that talk to SQLite do blocking I/O, so the graph registers them with
``blocking=True``: they run in worker threads, never on the event loop. Every side effect is
idempotent per order id (see :class:`~.db.Store`), so a retry can safely run a node again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from belugaflow import NonRetryableError

from .db import Store

__all__ = [
    "OrderNodes",
    "State",
    "Update",
    "route_decision",
    "route_inventory",
    "route_review",
]

State = Mapping[str, Any]
Update = dict[str, Any]


class OrderNodes:
    """The node functions, bound to one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def validate(self, state: State) -> Update:
        """Reject bad orders before any work starts; price the order, and name its product and
        the customer's tier (``standard`` when not given) for the decision.

        Raises:
            NonRetryableError: the order is invalid — retrying cannot fix it.
        """
        order_id, product_id = state.get("order_id"), state.get("product_id")
        quantity = state.get("quantity", 1)
        tier = state.get("customer_tier", "standard")
        if not isinstance(order_id, str) or not order_id:
            raise NonRetryableError(
                f"invalid order: order_id must be a non-empty string, got {order_id!r}"
            )
        if not isinstance(product_id, str) or not product_id:
            raise NonRetryableError(
                f"invalid order {order_id!r}: product_id must be a non-empty string,"
                f" got {product_id!r}"
            )
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise NonRetryableError(
                f"invalid order {order_id!r}: quantity must be a positive integer, got {quantity!r}"
            )
        if not isinstance(tier, str) or not tier:
            raise NonRetryableError(
                f"invalid order {order_id!r}: customer_tier must be a non-empty string,"
                f" got {tier!r}"
            )
        product = self.store.product(product_id)
        if product is None:
            raise NonRetryableError(f"invalid order {order_id!r}: unknown product {product_id!r}")
        return {
            "quantity": quantity,
            "amount": product.price * quantity,
            "product_name": product.name,
            "customer_tier": tier,
        }

    def check_inventory(self, state: State) -> Update:
        """Reserve the items (once per order); ``in_stock`` says whether that worked."""
        reserved = self.store.reserve(state["order_id"], state["product_id"], state["quantity"])
        return {"in_stock": reserved}

    def process_payment(self, state: State) -> Update:
        """Charge the order (once per order, however often this runs)."""
        return {"payment_id": self.store.charge(state["order_id"], state["amount"])}

    def fulfill(self, state: State) -> Update:
        """Create the shipment (once per order)."""
        fulfillment_id = self.store.fulfill(
            state["order_id"], state["product_id"], state["quantity"]
        )
        return {"fulfillment_id": fulfillment_id}

    def release(self, state: State) -> Update:
        """Give the reserved items back (a no-op when nothing is reserved)."""
        return {"released": self.store.release(state["order_id"])}

    def refund(self, state: State) -> Update:
        """Refund the payment (a no-op when nothing was charged)."""
        return {"refund_id": self.store.refund(state["order_id"])}

    def review_timeout(self, state: State) -> Update:
        """The reviewer did not answer in time."""
        return {"status": "review_timeout", "reason": "no review before the deadline"}

    def notify(self, state: State) -> Update:
        """Tell the customer; every path ends here and it sets the final ``status``."""
        order_id = state["order_id"]
        if state.get("fulfillment_id"):
            status = "completed"
            message = f"order {order_id} is paid and on its way ({state['fulfillment_id']})"
        elif not state.get("in_stock"):
            status = "out_of_stock"
            message = f"sorry, {state['product_id']} is out of stock; order {order_id} not charged"
        else:
            status = state.get("status") or "rejected"
            message = f"order {order_id} was not accepted ({status}); nothing was charged"
        return {"status": status, "message": message}


def route_inventory(state: State) -> str:
    """After ``check_inventory``: the route key to take."""
    return "in_stock" if state["in_stock"] else "out_of_stock"


def route_decision(state: State) -> str:
    """After ``decide``: ``approve``, ``review`` (the decision asks for it, or the order is
    worth more than its ``review_threshold``) or ``reject``."""
    action = state["decision"]["action"]
    threshold = state.get("review_threshold")
    if action == "manual_review" or (threshold is not None and state["amount"] > threshold):
        return "review" if action != "reject" else "reject"
    return "approve" if action == "approve" else "reject"


def route_review(state: State) -> str:
    """After the review: the reviewer's verdict."""
    return "approve" if state["review"]["verdict"] == "approve" else "reject"
