"""Deliberately changed copies of workflows, for the tests that prove replay catches a
non-deterministic change. Each inserts an activity before the first one: deployed like this,
every open run would fail its next workflow task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from belugaflow.temporal._messages import GraphInput
    from belugaflow.temporal._workflow import GraphWorkflow
    from examples.order_processing.activities import Order
    from examples.order_processing.workflow import OrderProcessingWorkflow, OrderResult
    from examples.versioning import v1
    from examples.versioning.activities import STEP_TIMEOUT, check_address

__all__ = ["AuditedGraphWorkflow", "AuditedOrderWorkflow", "UnguardedShipOrder"]

AUDIT_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="OrderProcessingWorkflow")
class AuditedOrderWorkflow(OrderProcessingWorkflow):
    """An audit step now runs before ``validate``."""

    @workflow.run
    async def run(self, order: Order) -> OrderResult:
        await workflow.execute_activity(
            "order.audit", order.order_id, start_to_close_timeout=AUDIT_TIMEOUT
        )
        return await super().run(order)


@workflow.defn(name="belugaflow.graph")
class AuditedGraphWorkflow(GraphWorkflow):
    """An audit step now runs before the graph's first node."""

    @workflow.run
    async def run(self, input: GraphInput) -> dict[str, Any]:
        await workflow.execute_activity(
            "belugaflow.audit", workflow.info().workflow_id, start_to_close_timeout=AUDIT_TIMEOUT
        )
        return await super().run(input)


@workflow.defn(name="ShipOrder")
class UnguardedShipOrder(v1.ShipOrder):
    """``examples.versioning.v2``'s change without ``patched()``: the address check simply
    comes first."""

    @workflow.run
    async def run(self, order_id: str) -> list[str]:
        await workflow.execute_activity(
            check_address, order_id, start_to_close_timeout=STEP_TIMEOUT
        )
        return await super().run(order_id)
