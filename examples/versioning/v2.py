"""Version 2 of ``ShipOrder``: check the address before packing.

Runs started on v1 have no ``check-address`` marker in their history, so when a v2 worker
replays them, ``workflow.patched("check-address")`` is False and they keep v1's path. A new run
records the marker the first time it reaches the call, and takes the new path for good.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from .activities import STEP_TIMEOUT, check_address, pack, ship

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
        if workflow.patched("check-address"):
            self._steps.append(
                await workflow.execute_activity(
                    check_address, order_id, start_to_close_timeout=STEP_TIMEOUT
                )
            )
        # Later, once no run started on v1 is open, replace the `if` above by
        #     workflow.deprecate_patch("check-address")
        #     self._steps.append(await workflow.execute_activity(check_address, ...))
        # so runs that recorded the marker still replay; once those have closed as well,
        # delete the deprecate_patch() line.
        self._steps.append(
            await workflow.execute_activity(pack, order_id, start_to_close_timeout=STEP_TIMEOUT)
        )
        await workflow.wait_condition(lambda: self._confirmed)
        self._steps.append(
            await workflow.execute_activity(ship, order_id, start_to_close_timeout=STEP_TIMEOUT)
        )
        return self._steps
