"""A small chaos soak (``benchmarks/chaos.py``, whose ``python -m benchmarks.chaos`` is the big
one): real worker processes and a durable dev server of its own, killed mid-run."""

from __future__ import annotations

from pathlib import Path

from benchmarks.chaos import QUICK_IN_FLIGHT, QUICK_RUNS, quick_faults, soak

DEADLINE = 45.0  # seconds for the runs: a failure, not a hang, if recovery stalls


async def test_orders_survive_a_server_restart_and_a_worker_kill(tmp_path: Path) -> None:
    """Fifty durable order-graph runs all end as they should (45 completed, the 5 sold-out ones
    out of stock) — none lost or failed, no order charged twice or wrongly, no workflow id run
    twice — though the server is SIGKILLed and restarted after 10 finish and a worker is
    SIGKILLed after 25."""
    report = await soak(
        QUICK_RUNS,
        faults=quick_faults(),
        seed=None,
        in_flight=QUICK_IN_FLIGHT,
        deadline=DEADLINE,
        directory=tmp_path,  # the worker and server logs stay there for a failure's reader
    )
    record = report.record()
    assert (report.server_restarts, report.worker_kills) == (1, 1), record
    assert not report.deadline_hit, record
    assert report.submitted == QUICK_RUNS and report.lost == 0, record
    assert report.failed == 0, record
    assert (report.completed, report.out_of_stock) == (45, 5), record
    assert report.duplicate_payments == 0 and report.payment_mismatches == 0, record
    assert report.runs_started_twice == 0, record
    assert report.meets_target, record
