"""Run two orders — one in stock, one out of stock — and print every step as it happens.

Usage: ``python -m examples.order_processing`` (or ``make run``) from the repository root.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from belugaflow import Event, EventKind, Orchestrator, load_config

from .db import Store
from .graph import build_order_graph

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


def main() -> int:
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


if __name__ == "__main__":
    raise SystemExit(main())
