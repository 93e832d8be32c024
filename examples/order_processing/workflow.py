"""``OrderProcessingWorkflow``: the use case as a hand-written Temporal workflow.

::

    validate → check_inventory ─ out of stock ─→ "out_of_stock"
                               └→ decide ─ approve ─────────────────┐
                                         ├ manual_review → wait for approve / reject signal
                                         │                 (timeout → "review_timeout")
                                         └ reject → "rejected"      ↓
                                               process_payment → fulfill → "completed"

Compensation (a saga): when the workflow is cancelled, or a step fails for good, it refunds the
payment if one may have been taken and releases the stock reservation, then ends cancelled
(or failed). A rejected or timed-out review releases the reservation too.

Cancellation, step by step:

* Reservation and payment are short, don't heartbeat and run with
  ``WAIT_CANCELLATION_COMPLETED``; :func:`_settled` cancels them and waits until the attempt in
  flight has ended before compensation starts, so a charge can never land after its refund.
* Fulfilment is long: it heartbeats, sees the cancellation and stops. If it had already shipped,
  the order is completed — a cancel that arrives after shipment is too late.
* Compensation activities run after the workflow was cancelled: Temporal delivers a workflow
  cancellation once, as ``CancelledError`` at the current ``await``; activities started
  afterwards are not cancelled, and :func:`_uncancellable` shields them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    import jsonschema  # noqa: F401  (used by parse(); imported here, outside the sandbox)
    import pydantic  # noqa: F401
    from temporalio.client import Client
    from temporalio.exceptions import ApplicationError
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from belugaflow import InputError, RetryPolicy
    from belugaflow._schema import json_schema, parse, problems
    from belugaflow.temporal import publish

    from .activities import (
        Decider,
        Decision,
        DecisionInput,
        Order,
        OrderActivities,
        PaymentRequest,
        payment_key,
    )
    from .db import Store

if TYPE_CHECKING:
    from belugaflow import Orchestrator

__all__ = [
    "Order",
    "OrderActivities",
    "OrderProcessingWorkflow",
    "OrderRequest",
    "OrderResult",
    "Progress",
    "StepOptions",
    "order_worker",
]

T = TypeVar("T")

ACTIVITY_RETRY = RetryPolicy(max_attempts=5, initial_interval=0.2, max_interval=10.0)
"""Forward steps: a transient failure is retried 0.2 s, 0.4 s, … apart, up to
:attr:`StepOptions.max_attempts` attempts."""
COMPENSATION_RETRY = RetryPolicy(max_attempts=0, initial_interval=0.2, max_interval=30.0)
"""Compensation never gives up (0 = unlimited): a stuck refund shows as a retrying activity."""


@dataclass(frozen=True, slots=True)
class StepOptions:
    """Retries and timeouts of the workflow's activities.

    Workflow code must be deterministic, so it reads no config file: the options travel in its
    input (:class:`OrderRequest`), filled by the starter from ``orchestration.workflow``
    (:meth:`from_orchestrator`). An input without them gets these defaults.
    """

    max_attempts: int = ACTIVITY_RETRY.max_attempts
    """Attempts of each forward step, the first included; 0 means unlimited. Default 5."""
    step_timeout: float = 30.0
    """Seconds one attempt of a short step (validate … payment, compensation) may take. A worker
    that dies mid-attempt is noticed after this long, and the attempt retried elsewhere."""
    fulfill_timeout: float = 600.0
    """Seconds one fulfilment attempt may take. Default 10 minutes."""
    fulfill_heartbeat: float = 10.0
    """Seconds a fulfilment may go without a heartbeat before it is retried on another worker."""

    @classmethod
    def from_orchestrator(cls, orch: Orchestrator) -> StepOptions:
        """The options of ``orch``'s config: ``orchestration.workflow.max_retries`` retries after
        the first attempt; the timeouts, which the config does not set, keep their defaults."""
        return cls(max_attempts=orch.workflow_retry.max_attempts)


@dataclass(frozen=True, slots=True)
class OrderRequest(Order):
    """The workflow's input: an :class:`Order` and how to run its steps.

    The workflow accepts a plain ``Order`` too, whose steps take the defaults. Activities that
    take an ``Order`` get the request and ignore ``steps``.
    """

    steps: StepOptions = StepOptions()

    @classmethod
    def of(cls, order: Order, steps: StepOptions | None = None) -> OrderRequest:
        """``order`` with ``steps`` (default :class:`StepOptions`)."""
        fields = {f.name: getattr(order, f.name) for f in dataclasses.fields(Order)}
        return cls(**fields, steps=steps or StepOptions())


@dataclass(frozen=True, slots=True)
class OrderResult:
    order_id: str
    status: str
    """``completed``, ``out_of_stock``, ``rejected`` or ``review_timeout``."""
    payment_id: str | None = None
    fulfillment_id: str | None = None
    decision: str | None = None
    """The decision's action: ``approve``, ``manual_review`` or ``reject``."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Progress:
    """What the ``progress`` query returns."""

    step: str
    """``started``, ``validate``, ``check_inventory``, ``decide``, ``await_approval``,
    ``process_payment``, ``fulfill``, ``compensate`` or ``done``."""
    decision: str | None = None
    reason: str = ""
    dropped_signals: tuple[str, ...] = ()
    """Signals the workflow dropped (a value of the wrong type), with why; the same key as a
    graph run's ``progress``."""


async def _settled(handle: workflow.ActivityHandle[T]) -> T:
    """Await a side-effecting activity. If the workflow is cancelled meanwhile, cancel the
    activity, wait until its attempt in flight has ended (done or cancelled), then re-raise
    the cancellation — so compensation sees every side effect that will ever happen.

    ``handle`` must run with ``ActivityCancellationType.WAIT_CANCELLATION_COMPLETED``.
    """
    try:
        return await asyncio.shield(handle)
    except asyncio.CancelledError:
        handle.cancel()
        # Cancelled (or failed): either way the workflow goes on to compensate.
        with contextlib.suppress(ActivityError):
            await handle
        raise


async def _uncancellable(handle: workflow.ActivityHandle[T]) -> T:
    """Await a compensation activity to its end, whatever cancellation arrives meanwhile."""
    while True:
        try:
            return await asyncio.shield(handle)
        except asyncio.CancelledError:
            continue


@workflow.defn(name="OrderProcessingWorkflow")
@publish(input=OrderRequest, signals={"approve": str, "reject": str})
class OrderProcessingWorkflow:
    """Process one order; the workflow id is the idempotency key (e.g. ``order-<id>``).

    Its input and signals arrive as plain JSON and are checked here, against the published
    schema (``belugaflow workflows schema OrderProcessingWorkflow``): an input with an unknown,
    missing or mistyped field fails the run at once, naming each; a signal of the wrong type
    is dropped and listed in ``progress``.

    The run and the signals take ``*args: Any`` so that the SDK neither decodes against a type
    nor calls with a fixed count: a value it cannot decode as the type, or one value too many
    or too few, would otherwise fail the workflow task over and over, the run stuck *Running*.
    """

    def __init__(self) -> None:
        self._step = "started"
        self._decision: Decision | None = None
        self._verdict: tuple[str, str] | None = None  # ("approve" | "reject", note)
        self._reserving = False  # a reservation may exist: release it when compensating
        self._charging = False  # a payment may exist: refund it when compensating
        self._steps = StepOptions()
        self._dropped_signals: list[str] = []

    @workflow.signal
    def approve(self, *note: Any) -> None:
        """A reviewer approves the order, with an optional note (the first verdict counts)."""
        self._review("approve", note)

    @workflow.signal
    def reject(self, *reason: Any) -> None:
        """A reviewer rejects the order, with an optional reason (the first verdict counts)."""
        self._review("reject", reason)

    def _review(self, verdict: str, args: tuple[Any, ...]) -> None:
        found = _note_problems(args)
        if found:
            self._dropped_signals.extend(f"signal {verdict!r}: {p}" for p in found)
        elif self._verdict is None:
            self._verdict = (verdict, args[0] if args else "")

    @workflow.query
    def progress(self) -> Progress:
        """The current step, the decision once made, and the signals dropped."""
        decision = self._decision
        dropped = tuple(self._dropped_signals)
        if decision is None:
            return Progress(self._step, dropped_signals=dropped)
        return Progress(self._step, decision.action, decision.reason, dropped)

    @workflow.run
    async def run(self, *input: Any) -> OrderResult:
        """``input``: one JSON object, an :class:`OrderRequest` (a plain ``Order`` gets the
        default steps)."""
        order = _order_request(input)
        self._steps = order.steps
        try:
            return await self._process(order)
        except (asyncio.CancelledError, FailureError):
            await self._compensate(order.order_id)
            raise

    async def _process(self, order: Order) -> OrderResult:
        self._step = "validate"
        amount = await workflow.execute_activity_method(
            OrderActivities.validate, order, **self._options()
        )

        self._step = "check_inventory"
        self._reserving = True
        in_stock = await _settled(
            workflow.start_activity_method(
                OrderActivities.check_inventory,
                order,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                **self._options(),
            )
        )
        if not in_stock:
            self._reserving = False
            return self._result(order, "out_of_stock", f"{order.product_id} is out of stock")

        self._step = "decide"
        self._decision = decision = await workflow.execute_activity_method(
            OrderActivities.decide,
            DecisionInput(
                order.order_id, order.product_id, order.quantity, amount, order.customer_tier
            ),
            **self._options(),
        )
        if decision.action == "reject":
            await self._compensate(order.order_id)
            return self._result(order, "rejected", decision.reason)
        over = order.review_threshold is not None and amount > order.review_threshold
        if decision.action == "manual_review" or over:
            self._step = "await_approval"
            try:
                await workflow.wait_condition(
                    lambda: self._verdict is not None,
                    timeout=timedelta(seconds=order.review_timeout),
                )
            except TimeoutError:
                await self._compensate(order.order_id)
                reason = f"no approve or reject signal within {order.review_timeout:g} s"
                return self._result(order, "review_timeout", reason)
            assert self._verdict is not None
            verdict, note = self._verdict
            if verdict == "reject":
                await self._compensate(order.order_id)
                return self._result(order, "rejected", note or "rejected by a reviewer")

        self._step = "process_payment"
        self._charging = True
        payment_id = await _settled(
            workflow.start_activity_method(
                OrderActivities.process_payment,
                PaymentRequest(
                    order.order_id, amount, payment_key(order.order_id, workflow.info().workflow_id)
                ),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                **self._options(),
            )
        )

        self._step = "fulfill"
        fulfillment_id = await workflow.execute_activity_method(
            OrderActivities.fulfill,
            order,
            start_to_close_timeout=timedelta(seconds=self._steps.fulfill_timeout),
            heartbeat_timeout=timedelta(seconds=self._steps.fulfill_heartbeat),
            retry_policy=self._forward_retry().to_temporal(),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._step = "done"
        return self._result(
            order,
            "completed",
            decision.reason,
            payment_id=payment_id,
            fulfillment_id=fulfillment_id,
        )

    async def _compensate(self, order_id: str) -> None:
        """Undo what may have happened, newest first. Each undo is idempotent and a no-op when
        there is nothing to undo, so "may have" is enough."""
        self._step = "compensate"
        if self._charging:
            await _uncancellable(
                workflow.start_activity_method(
                    OrderActivities.refund, order_id, **self._options(COMPENSATION_RETRY)
                )
            )
            self._charging = False
        if self._reserving:
            await _uncancellable(
                workflow.start_activity_method(
                    OrderActivities.release, order_id, **self._options(COMPENSATION_RETRY)
                )
            )
            self._reserving = False
        self._step = "done"

    def _forward_retry(self) -> RetryPolicy:
        return dataclasses.replace(ACTIVITY_RETRY, max_attempts=self._steps.max_attempts)

    def _options(self, retry: RetryPolicy | None = None) -> dict[str, Any]:
        """Options of a short step: the forward retry policy unless ``retry`` is given."""
        return {
            "start_to_close_timeout": timedelta(seconds=self._steps.step_timeout),
            "retry_policy": (retry or self._forward_retry()).to_temporal(),
        }

    def _result(self, order: Order, status: str, reason: str, **ids: str) -> OrderResult:
        self._step = "done"
        action = self._decision.action if self._decision is not None else None
        return OrderResult(order.order_id, status, decision=action, reason=reason, **ids)


def _order_request(args: tuple[Any, ...]) -> OrderRequest:
    """The run's arguments checked and built as an :class:`OrderRequest`.

    Raises:
        ApplicationError: non-retryable, type ``InputError``, naming each bad field (details:
            the list of problems) — it fails the run, where any other error would fail the
            workflow task and be retried for ever.
    """
    subject = "input of OrderProcessingWorkflow"
    try:
        if len(args) != 1:
            raise InputError(subject, [f"expected one JSON object (the order), got {len(args)}"])
        return parse(OrderRequest, args[0], subject)
    except InputError as error:
        raise ApplicationError(
            str(error), error.problems, type="InputError", non_retryable=True
        ) from None


def _note_problems(args: tuple[Any, ...]) -> list[str]:
    """Why the values of an ``approve`` / ``reject`` signal are not one optional string."""
    if len(args) > 1:
        return [f"expected at most one value (a string), got {len(args)}"]
    return problems(json_schema(str), args[0]) if args else []


def order_worker(
    client: Client,
    store: Store,
    *,
    task_queue: str,
    decide: Decider | None = None,
    activities_class: type[OrderActivities] = OrderActivities,
    **options: Any,
) -> Worker:
    """A worker that runs ``OrderProcessingWorkflow`` and its activities against ``store``.

    Args:
        decide: The decision function; default :func:`~.activities.default_decide`.
        activities_class: An :class:`OrderActivities` subclass to change a step (tests).
        **options: Passed to ``temporalio.worker.Worker``.
    """
    activities = activities_class(store, decide=decide)
    # As belugaflow's own workers do: the sandbox shares belugaflow (and the input check's
    # caches) with the host instead of importing it again for every run.
    options.setdefault(
        "workflow_runner",
        SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("belugaflow")
        ),
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderProcessingWorkflow],
        activities=activities.activities,
        **options,
    )
