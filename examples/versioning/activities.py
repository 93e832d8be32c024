"""The activities of both versions of ``ShipOrder``: plain functions, no I/O."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

__all__ = ["ACTIVITIES", "STEP_TIMEOUT", "check_address", "pack", "ship"]

STEP_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="shipping.check_address")
async def check_address(order_id: str) -> str:
    return f"address checked {order_id}"


@activity.defn(name="shipping.pack")
async def pack(order_id: str) -> str:
    return f"packed {order_id}"


@activity.defn(name="shipping.ship")
async def ship(order_id: str) -> str:
    return f"shipped {order_id}"


ACTIVITIES = [check_address, pack, ship]
"""What a worker of either version registers."""
