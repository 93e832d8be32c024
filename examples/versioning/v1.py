"""Version 1 of ``ShipOrder``: pack, wait for ``confirm``, ship."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from .activities import STEP_TIMEOUT, pack, ship

__all__ = ["ShipOrder"]


@workflow.defn(name="ShipOrder")
class ShipOrder:
    """Ship one order once someone confirms it; returns the steps taken."""

    def __init__(self) -> None:
        self._steps: list[str] = []
        self._confirmed = False

    @workflow.signal
    def confirm(self) -> None:
        self._confirmed = True

    @workflow.query
    def steps(self) -> list[str]:
        """The steps done so far."""
        return list(self._steps)

    @workflow.run
    async def run(self, order_id: str) -> list[str]:
        self._steps.append(
            await workflow.execute_activity(pack, order_id, start_to_close_timeout=STEP_TIMEOUT)
        )
        await workflow.wait_condition(lambda: self._confirmed)
        self._steps.append(
            await workflow.execute_activity(ship, order_id, start_to_close_timeout=STEP_TIMEOUT)
        )
        return self._steps
