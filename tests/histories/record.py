"""Record the workflow histories that ``tests/temporal/test_replay.py`` replays.

Run from the repository root::

    .venv/bin/python -m tests.histories.record                    # every scenario
    .venv/bin/python -m tests.histories.record order-completed    # only some

Each scenario below runs once on a fresh in-memory dev server, on the project's own workers
(``order_worker``, ``graph_worker``), with fixed input and a fixed workflow id; its history
(``WorkflowHandle.fetch_history().to_json()``) is written to ``tests/histories/<id>.json``. The
id's first word says which worker's workflows replay it: ``order-…`` or ``graph-…``.

Re-record only after an *intended* change to a workflow's commands (a new step, a reordered
call, a change to GraphWorkflow's scheduling), and know that runs already open when that change
is deployed have the old history: such a change needs ``workflow.patched()`` as well (see the
Versioning section of docs/temporal.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from belugaflow import Graph, Orchestrator, RunError
from belugaflow.temporal import DevServer, TemporalEngine, graph_worker
from examples.order_processing import Store, build_order_graph
from examples.order_processing.activities import Order
from examples.order_processing.workflow import OrderProcessingWorkflow, order_worker

HERE = Path(__file__).resolve().parent
ORDER_QUEUE = "orders"
GRAPH_QUEUE = "graphs"
IDENTITY = "history-recorder"  # instead of pid@host in every event
WAIT = 30.0
TASK_FAILED = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED


def review_graph(orch: Orchestrator) -> Graph:
    """Parallel branches and a router: three checks fan out from ``intake``, ``score`` joins
    them, and a router sends a risky order to ``escalate``, any other to ``approve``."""
    graph = orch.create_graph("review", max_workers=3).set_reducer("scores", "append")
    graph.add_node("intake", lambda s: {"amount": s["amount"]})
    graph.add_node("fraud", lambda s: {"scores": [2 if s["amount"] > 100 else 0]})
    graph.add_node("credit", lambda s: {"scores": [1]})
    graph.add_node("address", lambda s: {"scores": [0]}, short=True)  # a local activity
    graph.add_node("score", lambda s: {"risk": sum(s["scores"])})
    graph.add_node("escalate", lambda s: {"status": "escalated"})
    graph.add_node("approve", lambda s: {"status": "approved"})
    for check in ("fraud", "credit", "address"):
        graph.add_edge("intake", check).add_edge(check, "score")
    graph.add_conditional_edges(
        "score",
        lambda s: "risky" if s["risk"] >= 3 else "fine",
        {"risky": "escalate", "fine": "approve"},
    )
    return graph.set_entry_point("intake").set_finish_point(["escalate", "approve"])


@dataclass
class Recording:
    """What the scenarios share: a client, the shop and the graphs' orchestrator."""

    client: Client
    store: Store
    orch: Orchestrator = field(
        default_factory=lambda: Orchestrator(workflow_task_queue=GRAPH_QUEUE)
    )

    def __post_init__(self) -> None:
        # One definition per graph name in an orchestrator: built once, run by many scenarios.
        self.graphs = {
            "order": build_order_graph(self.orch, self.store),
            "review": review_graph(self.orch),
        }


Handle = WorkflowHandle[Any, Any]
Scenario = Callable[[Recording, str], Awaitable[Handle]]


async def _order(rec: Recording, id: str, order: Order) -> Handle:
    return await rec.client.start_workflow(
        OrderProcessingWorkflow.run, order, id=id, task_queue=ORDER_QUEUE
    )


async def _at_step(handle: Handle, step: str) -> None:
    deadline = time.monotonic() + WAIT
    while (await handle.query(OrderProcessingWorkflow.progress)).step != step:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.id} did not reach {step!r} within {WAIT} s")
        await asyncio.sleep(0.05)


async def order_completed(rec: Recording, id: str) -> Handle:
    handle = await _order(rec, id, Order("o-1", "prod-1", 2))
    await handle.result()
    return handle


async def order_out_of_stock(rec: Recording, id: str) -> Handle:
    handle = await _order(rec, id, Order("o-2", "prod-3"))
    await handle.result()
    return handle


async def order_review_approved(rec: Recording, id: str) -> Handle:
    handle = await _order(rec, id, Order("o-3", "prod-1", 2, review_threshold=1000))
    await _at_step(handle, "await_approval")
    await handle.signal(OrderProcessingWorkflow.approve, "looks fine")
    await handle.result()
    return handle


async def order_review_rejected(rec: Recording, id: str) -> Handle:
    handle = await _order(rec, id, Order("o-4", "prod-1", customer_tier="new"))
    await _at_step(handle, "await_approval")
    await handle.signal(OrderProcessingWorkflow.reject, "suspicious address")
    await handle.result()
    return handle


async def order_cancelled(rec: Recording, id: str) -> Handle:
    """Cancelled while waiting for review: the reservation is released (compensation)."""
    handle = await _order(rec, id, Order("o-5", "prod-2", 2, customer_tier="new"))
    await _at_step(handle, "await_approval")
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


def _graph(name: str, state: dict[str, Any]) -> Scenario:
    async def scenario(rec: Recording, id: str) -> Handle:
        engine = TemporalEngine(rec.client, task_queue=GRAPH_QUEUE)
        await engine.run(rec.graphs[name], state, id=id)
        return rec.client.get_workflow_handle(id)

    return scenario


def _named_order(verdict: str | None) -> Scenario:
    """The order graph started by its name; it waits for review, which is approved, or the
    run is cancelled while it waits (its reservation released by compensation)."""

    async def scenario(rec: Recording, id: str) -> Handle:
        engine = TemporalEngine(rec.client, task_queue=GRAPH_QUEUE, registry=rec.orch.registry)
        order = {"order_id": id, "product_id": "prod-1", "quantity": 2, "review_threshold": 1000}
        run = await engine.start(rec.graphs["order"], order, id=id)
        deadline = time.monotonic() + WAIT
        while (await run.query())["status"] != "waiting":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{id} did not wait for review within {WAIT} s")
            await asyncio.sleep(0.05)
        if verdict is None:
            await run.cancel()
        else:
            await run.signal("review", {"verdict": verdict})
        with contextlib.suppress(RunError):
            await run.result()
        return rec.client.get_workflow_handle(id)

    return scenario


SCENARIOS: dict[str, Scenario] = {
    "order-completed": order_completed,
    "order-out-of-stock": order_out_of_stock,
    "order-review-approved": order_review_approved,
    "order-review-rejected": order_review_rejected,
    "order-cancelled": order_cancelled,
    "graph-order-completed": _graph("order", {"order_id": "g-1", "product_id": "prod-1"}),
    "graph-order-out-of-stock": _graph("order", {"order_id": "g-2", "product_id": "prod-3"}),
    "graph-review-escalated": _graph("review", {"amount": 500}),
    "graph-review-approved": _graph("review", {"amount": 50}),
    "named-order-review-approved": _named_order("approve"),
    "named-order-cancelled": _named_order(None),
}
"""Workflow id (and file name) → how to run it."""


async def record(ids: Sequence[str]) -> list[Path]:
    """Run the scenarios ``ids`` on a fresh server and write their histories."""
    unknown = sorted(set(ids) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        async with DevServer() as server:
            client = await Client.connect(
                server.address, namespace=server.namespace, identity=IDENTITY
            )
            rec = Recording(client, Store.create(Path(tmp) / "shop.db"))
            orders = order_worker(client, rec.store, task_queue=ORDER_QUEUE, identity=IDENTITY)
            graphs = graph_worker(
                client,
                task_queue=GRAPH_QUEUE,
                registry=rec.orch.registry,
                breakers=rec.orch.breakers,
                identity=IDENTITY,
            )
            async with orders, graphs:
                for id in ids:
                    handle = await asyncio.wait_for(SCENARIOS[id](rec, id), WAIT)
                    history = await handle.fetch_history()
                    failed = [e.event_id for e in history.events if e.event_type == TASK_FAILED]
                    if failed:  # the code was broken while recording: nothing worth replaying
                        raise RuntimeError(f"{id}: workflow task failed (events {failed})")
                    path = HERE / f"{id}.json"
                    path.write_text(history.to_json() + "\n", encoding="utf-8")
                    print(f"{path.relative_to(HERE.parents[1])}: {len(history.events)} events")
                    written.append(path)
    return written


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1:] or list(SCENARIOS)))
