"""The activities of :class:`~.workflow.OrderProcessingWorkflow` and the data they exchange.

Activities are ``async`` methods of :class:`OrderActivities`, which holds the shop's
:class:`~.db.Store`. Each SQLite call runs in a worker thread (``asyncio.to_thread``), so the
worker's event loop never blocks and the worker needs no ``activity_executor``. A cancellation
(heartbeat response, worker shutdown) reaches the coroutine at its ``await``, never inside a
SQLite transaction; the activity then waits for the thread to finish before it reports the
cancellation, so "cancelled" always means the transaction is over.

Every side effect is idempotent per order id (see :class:`~.db.Store`): a retried or
re-delivered activity never reserves, charges, refunds or ships twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from temporalio import activity

from belugaflow.temporal._activities import to_application_error

from .db import Store
from .nodes import OrderNodes

__all__ = [
    "ACTIONS",
    "AUTO_APPROVE_LIMIT",
    "Decider",
    "Decision",
    "DecisionInput",
    "Order",
    "OrderActivities",
    "PaymentRequest",
    "default_decide",
    "payment_key",
]

P = ParamSpec("P")
T = TypeVar("T")

ACTIONS = frozenset({"approve", "manual_review", "reject"})
"""What a decision can say."""

AUTO_APPROVE_LIMIT = 10_000
"""Cents: :func:`default_decide` sends orders worth this much or more to manual review."""


@dataclass(frozen=True, slots=True)
class Order:
    """The workflow's input."""

    order_id: str
    product_id: str
    quantity: int = 1
    customer_tier: str = "standard"
    """E.g. ``new``, ``standard``, ``gold``; the decision function reads it."""
    review_threshold: int | None = None
    """Cents: an order worth more always waits for a person, whatever the decision says.
    ``None``: only the decision sends an order to review."""
    review_timeout: float = 24 * 3600.0
    """Seconds to wait for an ``approve`` / ``reject`` signal before giving up."""


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """What the decision function sees: order value and customer tier."""

    order_id: str
    product_id: str
    quantity: int
    amount: int
    """Order value in cents."""
    customer_tier: str
    similar_rejected: int = 0
    """How many similar past orders of the same tier ended rejected by a reviewer or charged
    back (recalled from the order memory: :mod:`~.memory`). 0 without memory."""
    recalled: str = ""
    """The recalled past orders and their outcomes, as lines for a model's prompt ("" when
    nothing was recalled)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """``action`` is one of :data:`ACTIONS`; ``reason`` says why, for people; the rest says who
    decided. Every field after ``action`` has a default, so results recorded before a field
    existed still decode when old histories replay."""

    action: str
    reason: str = ""
    provider: str = ""
    """Who decided: ``"openai"``, ``"anthropic"``, ``"rules"`` (a decision table or
    :func:`default_decide`); empty when the decision function does not say."""
    model: str = ""
    """The model or rule set that decided, e.g. ``"gpt-4o-mini"``, ``"default_decide"``."""
    fallback_used: bool = False
    """True when the first decider gave no valid decision (in time) and a fallback decided."""
    confidence: float | None = None
    """The decider's confidence, 0 to 1, when it gave one."""
    problems: tuple[str, ...] = ()
    """Why each decider before the one that decided was passed over, in order."""


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    order_id: str
    amount: int
    """In cents."""
    payment_id: str
    """Derived from the run (:func:`payment_key`), so every attempt carries the same id."""


Decider = Callable[[DecisionInput], Decision | Awaitable[Decision]]
"""The decision seam, sync or async: :func:`default_decide`, or an LLM through
:class:`~.decision.LLMDecider` (see :func:`~.decision.decider_from_config`)."""


def default_decide(order: DecisionInput) -> Decision:
    """A deterministic rule: new customers, orders like past ones that a reviewer rejected or
    that were charged back (``similar_rejected``), and orders of :data:`AUTO_APPROVE_LIMIT`
    cents or more go to manual review; everything else is approved."""
    if order.customer_tier == "new":
        return _ruled("manual_review", "first order of a new customer")
    if order.similar_rejected > 0:
        return _ruled(
            "manual_review",
            f"{order.similar_rejected} similar past order(s) of {order.customer_tier}"
            " customers ended rejected or charged back",
        )
    if order.amount >= AUTO_APPROVE_LIMIT:
        return _ruled(
            "manual_review",
            f"order value {order.amount} cents is at or above the auto-approval limit"
            f" of {AUTO_APPROVE_LIMIT} cents",
        )
    return _ruled("approve", f"order value {order.amount} cents is below the limit")


def _ruled(action: str, reason: str) -> Decision:
    return Decision(action, reason, provider="rules", model="default_decide", confidence=1.0)


def payment_key(order_id: str, workflow_id: str) -> str:
    """The payment id of ``order_id`` charged by workflow ``workflow_id``: the same on every
    attempt and every replay, different for another order."""
    digest = hashlib.sha256(f"{workflow_id}\x00{order_id}".encode()).hexdigest()[:16]
    return f"pay-{digest}"


@contextlib.contextmanager
def _temporal_errors() -> Iterator[None]:
    """Let errors keep their meaning on Temporal: a ``NonRetryableError`` (or any error marked
    ``retryable = False``) becomes a non-retryable ``ApplicationError`` of the same type name."""
    try:
        yield
    except Exception as error:
        converted = to_application_error(error)
        if converted is error:
            raise  # retryable: Temporal wraps it and keeps the type name
        raise converted from error


async def _in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking ``fn`` in a thread; if cancelled meanwhile, let the thread finish first."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what we report
        raise


class OrderActivities:
    """The order activities, bound to one store and one decision function.

    Subclass and override an activity (keeping its ``@activity.defn`` name) to change a step,
    e.g. in tests.
    """

    def __init__(self, store: Store, *, decide: Decider | None = None) -> None:
        self.store = store
        self.decider: Decider = decide if decide is not None else default_decide
        self._nodes = OrderNodes(store)

    @activity.defn(name="order.validate")
    async def validate(self, order: Order) -> int:
        """Reject a bad order before any work starts; return its value in cents.

        Raises:
            ApplicationError: non-retryable, type ``NonRetryableError``, for an invalid order.
        """
        with _temporal_errors():
            update = await _in_thread(self._nodes.validate, dataclasses.asdict(order))
        return int(update["amount"])

    @activity.defn(name="order.check_inventory")
    async def check_inventory(self, order: Order) -> bool:
        """Reserve the items, once per order; False when there are not enough."""
        with _temporal_errors():
            return await _in_thread(
                self.store.reserve, order.order_id, order.product_id, order.quantity
            )

    @activity.defn(name="order.decide")
    async def decide(self, order: DecisionInput) -> Decision:
        """Ask the registered decision function about the order."""
        with _temporal_errors():
            result: Any = self.decider(order)
            if inspect.isawaitable(result):
                result = await result
            if not isinstance(result, Decision) or result.action not in ACTIONS:
                raise TypeError(
                    f"the decision function returned {result!r}; expected a Decision whose"
                    f" action is one of {sorted(ACTIONS)}"
                )
            return result

    @activity.defn(name="order.process_payment")
    async def process_payment(self, payment: PaymentRequest) -> str:
        """Charge the order, once per order; return the payment id."""
        with _temporal_errors():
            return await _in_thread(
                self.store.charge_as, payment.order_id, payment.amount, payment.payment_id
            )

    @activity.defn(name="order.fulfill")
    async def fulfill(self, order: Order) -> str:
        """Create the shipment, once per order; return the fulfillment id.

        A real shipment takes a while: such an implementation calls ``activity.heartbeat()``
        while it works, which is how it learns that the workflow was cancelled.
        """
        with _temporal_errors():
            return await _in_thread(
                self.store.fulfill, order.order_id, order.product_id, order.quantity
            )

    @activity.defn(name="order.refund")
    async def refund(self, order_id: str) -> str | None:
        """Compensation: refund the order's payment if it was taken (once)."""
        with _temporal_errors():
            return await _in_thread(self.store.refund, order_id)

    @activity.defn(name="order.release")
    async def release(self, order_id: str) -> bool:
        """Compensation: put the order's reserved items back in stock (once)."""
        with _temporal_errors():
            return await _in_thread(self.store.release, order_id)

    @property
    def activities(self) -> list[Callable[..., Awaitable[Any]]]:
        """The activity callables to register on a worker."""
        return [
            self.validate,
            self.check_inventory,
            self.decide,
            self.process_payment,
            self.fulfill,
            self.refund,
            self.release,
        ]
