"""The use case, end to end: orders run durably on Temporal, each step printed as it happens.

Usage: ``python -m examples.order_processing`` from the repository root; ``--local`` runs the
same flow as an in-process graph instead, with no server. (``make run`` runs the whole system
instead: ``belugaflow up``, see docs/up.md.) ``--chargeback ORDER_ID`` records that a completed
order was charged back, in the order memory beside the shop database (``.belugaflow/memory.db``
unless ``$BELUGAFLOW_ORDERS_DB`` names another shop): from then on the order graph sends
similar orders of the same tier to a reviewer.

Durably, it uses the Temporal server at the config's ``temporal.address`` if one answers, else
starts the embedded dev server there (state in ``.belugaflow/temporal.db``), runs a worker in
this process and starts three orders: one completes, one is out of stock, and one is large
enough to wait for a reviewer — the demo plays the reviewer and sends ``approve``. The decision
step is the example's deterministic rule (:func:`~.activities.default_decide`), not an LLM,
unless the config's LLM provider has its API key (``OPENAI_API_KEY``); each decision line says
who decided.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from belugaflow import Event, EventKind, Orchestrator, load_config
from belugaflow.temporal import create_worker, embedded_server

from .activities import Decider, Decision, DecisionInput, Order
from .app import create_app, db_file, start_order
from .db import Store
from .decision import decider_from_config
from .graph import build_order_graph
from .memory import memory_file, order_memory, record_chargeback
from .workflow import OrderProcessingWorkflow, Progress

CONFIG = Path(__file__).with_name("config.yaml")

ORDERS: list[dict[str, Any]] = [
    {"order_id": "A-1001", "product_id": "prod-1", "quantity": 2},
    {"order_id": "A-1002", "product_id": "prod-3", "quantity": 1},  # prod-3 is out of stock
]


def describe(event: Event) -> str | None:
    """One line for a node event; None for the events this demo does not print."""
    node = f"{event.node or '':<16}"
    if event.kind is EventKind.NODE_STARTED:
        return f"  started    {node} (attempt {event.attempt})"
    if event.kind is EventKind.NODE_COMPLETED:
        return f"  completed  {node} {event.update}"
    if event.kind is EventKind.NODE_SKIPPED:
        return f"  skipped    {event.node}"
    if event.kind is EventKind.NODE_RETRY_SCHEDULED:
        return f"  retrying   {node} in {event.delay:.1f} s after {event.error!r}"
    if event.kind is EventKind.NODE_FAILED:
        return f"  failed     {node} {event.error}"
    return None


DURABLE_ORDERS = [
    Order("B-2001", "prod-1", quantity=2, customer_tier="gold"),
    Order("B-2002", "prod-3", quantity=1),  # out of stock
    Order("B-2003", "prod-2", quantity=3, customer_tier="gold"),  # 135 USD: waits for a reviewer
]


def run_local() -> int:
    """The order flow as an in-process graph, printed node by node."""
    config = load_config(CONFIG)  # ${OPENAI_API_KEY} may be unset: this demo uses no LLM
    orch = Orchestrator.from_config(config)
    with tempfile.TemporaryDirectory(prefix="belugaflow-orders-") as folder:
        store = Store.create(Path(folder) / "shop.db")
        graph = build_order_graph(orch, store)
        for order in ORDERS:
            print(f"order {order['order_id']}: {order['quantity']} x {order['product_id']}")
            result: dict[str, Any] = {}
            for event in graph.stream(order):
                line = describe(event)
                if line is not None:
                    print(line, flush=True)
                if event.kind is EventKind.RUN_COMPLETED and event.state is not None:
                    result = dict(event.state)
            print(f"  => status: {result['status']}: {result['message']}")
            print(f"     final state: {result}\n")
    return 0


async def follow(orch: Orchestrator, order: Order, run: str) -> None:
    """Start ``order``'s workflow, print each step it reaches, approve it if it waits for a
    reviewer, and print its result."""
    handle = await start_order(orch, order, id=f"order-{order.order_id}-{run}")
    print(f"order {order.order_id}: started workflow {handle.id}", flush=True)
    seen = None
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        progress: Progress = await handle.query(OrderProcessingWorkflow.progress)
        if progress.step != seen:
            seen = progress.step
            print(f"  {order.order_id}  step {seen}", flush=True)
            if seen == "await_approval":
                print(f"  {order.order_id}  reviewer sends approve", flush=True)
                await handle.signal(OrderProcessingWorkflow.approve, "looks fine")
        await asyncio.wait({result}, timeout=0.05)
    outcome = result.result()
    print(f"  {order.order_id}  => {outcome.status} {outcome}", flush=True)


def announced(decider: Decider) -> Decider:
    """``decider``, printing who decided each order (the worker runs in this process)."""

    async def decide(order: DecisionInput) -> Decision:
        result = decider(order)
        decision: Decision = await result if inspect.isawaitable(result) else result
        by = f"{decision.provider}:{decision.model}"
        by += " (fallback)" if decision.fallback_used else ""
        print(f"  {order.order_id}  decided {decision.action} by {by}", flush=True)
        return decision

    return decide


async def run_durable() -> int:
    """The orders as ``OrderProcessingWorkflow`` runs on Temporal."""
    config = load_config(CONFIG)
    with tempfile.TemporaryDirectory(prefix="belugaflow-orders-") as folder:
        store = Store.create(Path(folder) / "shop.db")
        orch = create_app(config, store=store, decide=announced(decider_from_config(config)))
        address = orch.temporal_address
        async with embedded_server(
            address,
            namespace=orch.temporal_namespace,
            tls=orch.temporal_tls,
            api_key=orch.temporal_api_key,
        ) as server:
            where = f"embedded dev server ({server.db_file})" if server else "running server"
            print(f"Temporal at {address}: {where}", flush=True)
            async with create_worker(await orch.client(), orch):
                run = time.strftime("%Y%m%d-%H%M%S")  # a fresh id per demo run
                await asyncio.gather(*(follow(orch, order, run) for order in DURABLE_ORDERS))
    return 0


async def chargeback(order_id: str) -> int:
    """Record that ``order_id`` was charged back, in the order memory beside the shop."""
    path = memory_file(db_file())
    if not path.is_file():
        print(
            f"error: no order memory at {path}: run some orders first (make run)", file=sys.stderr
        )
        return 1
    memory = order_memory(path)
    try:
        recorded = await record_chargeback(order_id, memory)
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        await memory.store.close()
    print(f"recorded {recorded} in {path}: similar orders of its tier now wait for a reviewer")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.order_processing")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--local", action="store_true", help="run in process, without Temporal")
    action.add_argument(
        "--chargeback",
        metavar="ORDER_ID",
        help="record that a completed order was charged back (in the order memory)",
    )
    args = parser.parse_args(argv)
    if args.chargeback is not None:
        return asyncio.run(chargeback(args.chargeback))
    return run_local() if args.local else asyncio.run(run_durable())


if __name__ == "__main__":
    raise SystemExit(main())
