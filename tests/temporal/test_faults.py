"""Faults survived, with real processes: workers run as ``belugaflow worker --app
tests.temporal.fault_app:orch`` (the use case's workflow and activities against a real SQLite
shop), a real Temporal dev server, and the test as the client.

- A worker SIGKILLed mid-activity: a second worker finishes its runs, each payment exists once.
- The Temporal server SIGKILLed mid-run and started again on its database file: every started
  workflow completes, each order charged once.
- Errors through the worker process: non-retryable fails at once with its type and message;
  retryable is retried as often as ``orchestration.workflow.max_retries`` says.
- Cancellation reaches a heartbeating activity, and compensation refunds the payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState
from tests.temporal import fault_app
from tests.temporal.fault_app import FAULT_DIR_ENV, Faults, StartWorker, WorkerProcess

from belugaflow import Orchestrator
from belugaflow.temporal import DevServer
from examples.order_processing.activities import Order, payment_key
from examples.order_processing.app import DB_ENV, start_order
from examples.order_processing.db import Store
from examples.order_processing.workflow import StepOptions

APP = "tests.temporal.fault_app:orch"
WAIT = 60.0  # seconds: a safety net for anything awaited, so a bug fails instead of hanging


@dataclass
class Shop:
    """One shop database and fault directory, shared by the test and its worker processes."""

    store: Store
    faults: Faults
    directory: Path

    @property
    def env(self) -> dict[str, str]:
        return {DB_ENV: str(self.store.path), FAULT_DIR_ENV: str(self.faults.directory)}

    def release_all(self) -> None:
        """Let every held activity go, so that workers drain quickly."""
        for hold in self.faults.directory.glob("*-hold"):
            hold.unlink(missing_ok=True)


def make_shop(directory: Path) -> Shop:
    (directory / "faults").mkdir(parents=True)
    return Shop(Store.create(directory / "shop.db"), Faults(directory / "faults"), directory)


@contextlib.contextmanager
def worker_pool(shop: Shop, server: DevServer, task_queue: str) -> Iterator[StartWorker]:
    """Start fault-app workers for ``shop``; its held activities are let go before they stop."""
    with fault_app.worker_pool(
        APP,
        address=server.address,
        namespace=server.namespace,
        task_queue=task_queue,
        logs=shop.directory,
        env=shop.env,
    ) as start:
        try:
            yield start
        finally:
            shop.release_all()


def starter(server: DevServer, task_queue: str) -> Orchestrator:
    """The client side: the fault app's config, pointed at ``server`` and ``task_queue``."""
    orch = Orchestrator.from_config(fault_app.config())
    orch.temporal_address, orch.temporal_namespace = server.address, server.namespace
    orch.workflow_task_queue = task_queue
    return orch


async def start(
    orch: Orchestrator, order_id: str, steps: StepOptions | None = None
) -> WorkflowHandle[Any, Any]:
    order = Order(order_id, "prod-1")
    workflow_id = f"order-{order_id}-{uuid.uuid4().hex[:8]}"
    return await start_order(orch, order, id=workflow_id, steps=steps or fault_app.steps())


def crash_steps() -> StepOptions:
    """Attempts to spare: on a slow machine a held attempt may time out (and be retried on the
    same worker) before the crash; the crash tests are about recovery, not retry counts."""
    return dataclasses.replace(fault_app.steps(), max_attempts=10)


async def until(condition: Callable[[], bool], what: str, *workers: WorkerProcess) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            output = "\n".join(worker.output() for worker in workers)
            raise AssertionError(f"no {what} after {WAIT} s; worker output:\n{output}")
        await asyncio.sleep(0.05)


async def result(handle: WorkflowHandle[Any, Any], *workers: WorkerProcess) -> Any:
    try:
        return await asyncio.wait_for(handle.result(), WAIT)
    except TimeoutError:
        output = "\n".join(worker.output() for worker in workers)
        raise AssertionError(f"{handle.id} did not end; worker output:\n{output}") from None


@pytest.fixture
def queue() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return make_shop(tmp_path)


# --- crashes ---


async def test_killed_worker_mid_activity_second_worker_finishes(
    temporal_server: DevServer, shop: Shop, queue: str
) -> None:
    """A worker SIGKILLed with two activities in flight — a payment charged but not yet
    reported (noticed by its start-to-close timeout) and a heartbeating fulfilment (noticed by
    its heartbeat timeout) — loses nothing: a second worker runs both steps again and completes
    both orders, each payment row existing exactly once."""
    steps = {"kill-payment": "payment", "kill-fulfill": "fulfill"}  # order id -> held step
    for order_id, step in steps.items():
        shop.faults.hold(order_id, step)
    with worker_pool(shop, temporal_server, queue) as start_worker:
        first = start_worker()
        orch = starter(temporal_server, queue)
        handles = {order_id: await start(orch, order_id, crash_steps()) for order_id in steps}
        await until(lambda: shop.store.count("payments", "kill-payment") == 1, "charge", first)
        await until(lambda: "1" in shop.faults.marks("kill-fulfill", "fulfill"), "fulfil", first)
        assert first.kill() == -signal.SIGKILL
        shop.release_all()
        second = start_worker()
        done = {order_id: await result(handle, second) for order_id, handle in handles.items()}
    for order_id, step in steps.items():
        assert done[order_id].status == "completed"
        assert done[order_id].payment_id == payment_key(order_id, handles[order_id].id)
        assert shop.store.count("payments", order_id) == 1
        assert shop.store.count("fulfillments", order_id) == 1
        attempts = {int(n): pid for n, pid in shop.faults.marks(order_id, step).items()}
        assert attempts[1] == first.pid and attempts[max(attempts)] == second.pid, attempts


async def test_server_killed_and_restarted_every_workflow_completes(
    tmp_path: Path, shop: Shop, queue: str
) -> None:
    """The Temporal server SIGKILLed with payments in flight and fresh starts, then started
    again on the same database file and port: every started workflow completes, each order
    charged once, and the worker rides out the outage."""
    server = DevServer(tmp_path / "temporal.db")  # durable, as users run it
    await server.start()
    try:
        with worker_pool(shop, server, queue) as start_worker:
            worker = start_worker()
            orch = starter(server, queue)
            held = [f"held-{i}" for i in range(3)]
            for order_id in held:
                shop.faults.hold(order_id, "payment")
            handles = [await start(orch, order_id, crash_steps()) for order_id in held]
            await until(
                lambda: all(shop.store.count("payments", o) == 1 for o in held),
                "charges in flight",
                worker,
            )
            fresh = [f"fresh-{i}" for i in range(3)]  # anywhere in their run at the crash
            handles += [await start(orch, order_id, crash_steps()) for order_id in fresh]

            assert server.pid is not None
            os.killpg(server.pid, signal.SIGKILL)  # the server leads its own process group
            assert server.wait(10) == -signal.SIGKILL
            await server.stop()  # reaps it
            shop.release_all()
            await server.start()  # same file, same port

            done = [await result(handle, worker) for handle in handles]
            assert worker.running
    finally:
        await server.stop()
    assert [d.status for d in done] == ["completed"] * len(handles)
    for order_id in held + fresh:
        assert shop.store.count("payments", order_id) == 1
        assert shop.store.count("fulfillments", order_id) == 1


# --- errors and cancellation, through one worker process ---


@pytest.fixture(scope="module")
def shared(
    temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Shop, WorkerProcess, str]]:
    """One shop and one worker process for the tests below (distinct order ids)."""
    shop = make_shop(tmp_path_factory.mktemp("shared-shop"))
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    with worker_pool(shop, temporal_server, queue) as start_worker:
        yield shop, start_worker(), queue


async def test_non_retryable_error_fails_at_once_with_type_and_message(
    temporal_server: DevServer, shared: tuple[Shop, WorkerProcess, str]
) -> None:
    """A declined payment (non-retryable) fails the workflow on its first attempt; the client
    sees the activity, the error's type and its message; the stock goes back."""
    shop, worker, queue = shared
    shop.faults.decline_payment("declined", "card declined: insufficient funds")
    handle = await start(starter(temporal_server, queue), "declined")
    with pytest.raises(WorkflowFailureError) as caught:
        await result(handle, worker)
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.activity_type == "order.process_payment"
    assert activity_error.retry_state is RetryState.NON_RETRYABLE_FAILURE
    error = activity_error.cause
    assert isinstance(error, ApplicationError) and error.type == "NonRetryableError"
    assert error.message == "card declined: insufficient funds"
    assert shop.faults.marks("declined", "payment") == {"1": worker.pid}
    assert shop.store.count("payments", "declined") == 0
    assert shop.store.count("reservations", "declined") == 0


async def test_retryable_error_is_retried_as_configured(
    temporal_server: DevServer, shared: tuple[Shop, WorkerProcess, str]
) -> None:
    """``max_retries: 2`` gives three attempts: two failures and a success complete the order;
    three failures fail it with the last error, and compensation releases the stock."""
    shop, worker, queue = shared
    assert fault_app.steps().max_attempts == fault_app.MAX_RETRIES + 1 == 3
    shop.faults.fail_payment("flaky", 2)
    shop.faults.fail_payment("down", 100)
    orch = starter(temporal_server, queue)
    flaky, down = await start(orch, "flaky"), await start(orch, "down")

    assert (await result(flaky, worker)).status == "completed"
    assert sorted(shop.faults.marks("flaky", "payment")) == ["1", "2", "3"]
    assert shop.store.count("payments", "flaky") == 1

    with pytest.raises(WorkflowFailureError) as caught:
        await result(down, worker)
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
    error = activity_error.cause
    assert isinstance(error, ApplicationError) and error.type == "ConnectionError"
    assert error.message == "payment gateway unreachable (attempt 3)"
    assert sorted(shop.faults.marks("down", "payment")) == ["1", "2", "3"]
    assert shop.store.count("payments", "down") == 0
    assert shop.store.count("reservations", "down") == 0


async def test_cancel_reaches_the_heartbeating_activity_and_refunds(
    temporal_server: DevServer, shared: tuple[Shop, WorkerProcess, str]
) -> None:
    """Cancelling during fulfilment: the activity hears it through its heartbeats and stops,
    the payment is refunded, the stock released, and the workflow ends cancelled."""
    shop, worker, queue = shared
    shop.faults.hold("cancelled", "fulfill")
    handle = await start(starter(temporal_server, queue), "cancelled")
    await until(lambda: "1" in shop.faults.marks("cancelled", "fulfill"), "fulfilment", worker)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as caught:
        await result(handle, worker)
    assert isinstance(caught.value.cause, CancelledError)
    assert shop.faults.marks("cancelled", "fulfill").get("cancelled") == worker.pid
    assert shop.store.count("payments", "cancelled") == 1
    assert shop.store.count("refunds", "cancelled") == 1
    assert shop.store.count("fulfillments", "cancelled") == 0
    assert shop.store.count("reservations", "cancelled") == 0
