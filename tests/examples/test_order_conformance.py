"""The order flow three ways — the hand-written ``OrderProcessingWorkflow``, the order graph in
process, the order graph on Temporal (started by its name) — give the same outcome and leave
the shop in the same state for the same input: in stock, out of stock, approved, rejected,
review timed out, cancelled while waiting (its reservation released by compensation)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from belugaflow import Orchestrator, RunCancelledError, RunHandle
from belugaflow.temporal import create_worker
from examples.order_processing.activities import Order
from examples.order_processing.db import Store
from examples.order_processing.graph import build_order_graph
from examples.order_processing.workflow import OrderProcessingWorkflow, order_worker

WAIT = 20.0


class Flow:
    """One way to run the order flow, with the operations every scenario needs."""

    def __init__(self, kind: str, client: Client, store: Store, queue: str) -> None:
        self.kind = kind
        self.client = client
        self.store = store
        self.queue = queue
        self.review_timeout = 30.0
        self.handle: RunHandle | WorkflowHandle[Any, Any] | None = None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        if self.kind == "workflow":
            async with order_worker(self.client, self.store, task_queue=self.queue):
                yield
            return
        self.orch = Orchestrator(workflow_task_queue=self.queue)
        self.orch.use_client(self.client)
        self.graph = build_order_graph(self.orch, self.store, review_timeout=self.review_timeout)
        if self.kind == "graph-local":
            yield
            return
        async with create_worker(self.client, self.orch):
            yield

    async def start(self, order: dict[str, Any]) -> None:
        if self.kind == "workflow":
            self.handle = await self.client.start_workflow(
                OrderProcessingWorkflow.run,
                Order(**order, review_timeout=self.review_timeout),
                id=f"order-{order['order_id']}-{uuid.uuid4().hex[:6]}",
                task_queue=self.queue,
            )
        else:
            engine = "local" if self.kind == "graph-local" else "temporal"
            self.handle = await self.orch.start(self.graph, order, engine=engine)

    async def awaiting_review(self) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                if self.kind == "workflow":
                    step = (await self.handle.query(OrderProcessingWorkflow.progress)).step  # type: ignore[union-attr]
                    if step == "await_approval":
                        return
                elif (await self.handle.query("progress"))["status"] == "waiting":  # type: ignore[union-attr]
                    return
                await asyncio.sleep(0.05)

    async def review(self, verdict: str) -> None:
        if self.kind == "workflow":
            await self.handle.signal(verdict, "by the test")  # type: ignore[union-attr]
        else:
            await self.handle.signal("review", {"verdict": verdict})  # type: ignore[union-attr]

    async def cancel(self) -> None:
        await self.handle.cancel()  # type: ignore[union-attr]

    async def outcome(self) -> str:
        """The final status, or ``cancelled``."""
        try:
            async with asyncio.timeout(WAIT):
                result = await self.handle.result()  # type: ignore[union-attr]
        except RunCancelledError:
            return "cancelled"
        except WorkflowFailureError as error:
            assert isinstance(error.cause, CancelledError)
            return "cancelled"
        return str(result.status if self.kind == "workflow" else result["status"])

    def shop(self, order_id: str, product_id: str) -> tuple[int, int, int, int]:
        """Payments, refunds, fulfilments of the order; items of the product in stock."""
        store = self.store
        return (
            store.count("payments", order_id),
            store.count("refunds", order_id),
            store.count("fulfillments", order_id),
            store.in_stock(product_id),
        )


@pytest.fixture(params=["workflow", "graph-local", "graph-temporal"])
def flow(request: pytest.FixtureRequest, temporal_client: Client, store: Store, queue: str) -> Flow:
    return Flow(request.param, temporal_client, store, queue)


ORDER = {"order_id": "c-1", "product_id": "prod-1", "quantity": 2}
REVIEWED = {**ORDER, "review_threshold": 1000}  # approved by the rule, but over the threshold


async def test_in_stock(flow: Flow) -> None:
    async with flow.serving():
        await flow.start(ORDER)
        assert await flow.outcome() == "completed"
    assert flow.shop("c-1", "prod-1") == (1, 0, 1, 8)


async def test_out_of_stock(flow: Flow) -> None:
    async with flow.serving():
        await flow.start({"order_id": "c-2", "product_id": "prod-3"})
        assert await flow.outcome() == "out_of_stock"
    assert flow.shop("c-2", "prod-3") == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("verdict", "status", "shop"),
    [("approve", "completed", (1, 0, 1, 8)), ("reject", "rejected", (0, 0, 0, 10))],
)
async def test_review(flow: Flow, verdict: str, status: str, shop: tuple[int, ...]) -> None:
    async with flow.serving():
        await flow.start(REVIEWED)
        await flow.awaiting_review()
        await flow.review(verdict)
        assert await flow.outcome() == status
    assert flow.shop("c-1", "prod-1") == shop


async def test_review_timeout(flow: Flow) -> None:
    flow.review_timeout = 1.0
    async with flow.serving():
        await flow.start(REVIEWED)
        assert await flow.outcome() == "review_timeout"
    assert flow.shop("c-1", "prod-1") == (0, 0, 0, 10)


async def test_cancel_while_waiting_releases_the_reservation(flow: Flow) -> None:
    async with flow.serving():
        await flow.start(REVIEWED)
        await flow.awaiting_review()
        assert flow.shop("c-1", "prod-1") == (0, 0, 0, 8)  # reserved
        await flow.cancel()
        assert await flow.outcome() == "cancelled"
    assert flow.shop("c-1", "prod-1") == (0, 0, 0, 10)
