"""The order-processing example: both routes, idempotent side effects, retries, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from belugaflow import InputError, NodeFailedError, NonRetryableError, Orchestrator
from belugaflow.temporal import DevServer
from belugaflow.temporal._devserver import _free_port as free_port
from belugaflow.testing import no_backoff
from examples.order_processing import OrderNodes, Store, build_order_graph
from examples.order_processing.nodes import State, Update

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "shop.db")


def test_readme_snippet(store: Store) -> None:
    """The snippet from the README: an in-stock order completes."""
    graph = build_order_graph(Orchestrator(), store)
    result = graph.invoke({"order_id": "123", "product_id": "prod-1"})
    assert result["status"] == "completed"
    assert result["payment_id"].startswith("pay-")
    assert result["fulfillment_id"].startswith("ful-")
    assert store.in_stock("prod-1") == 9


def test_out_of_stock_ends_without_payment(store: Store) -> None:
    """An out-of-stock order skips payment and fulfillment and ends "out_of_stock"."""
    graph = build_order_graph(Orchestrator(), store)
    result = graph.invoke({"order_id": "o-1", "product_id": "prod-3"})
    assert result["status"] == "out_of_stock"
    assert "payment_id" not in result
    assert store.count("payments", "o-1") == 0
    assert store.count("fulfillments", "o-1") == 0
    assert store.count("reservations", "o-1") == 0


def test_same_order_twice_charges_once(store: Store) -> None:
    """Running one order twice charges, reserves and ships it once."""
    graph = build_order_graph(Orchestrator(), store)
    order = {"order_id": "o-2", "product_id": "prod-2", "quantity": 2}
    first = graph.invoke(order)
    second = graph.invoke(order)
    assert first["status"] == second["status"] == "completed"
    assert first["payment_id"] == second["payment_id"]
    assert first["fulfillment_id"] == second["fulfillment_id"]
    assert store.count("payments", "o-2") == 1
    assert store.count("fulfillments", "o-2") == 1
    assert store.in_stock("prod-2") == 1  # 3 - 2, taken once


class FlakyPayment(OrderNodes):
    """Charges, then loses the response once: the worst moment for a retry."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calls = 0

    def process_payment(self, state: State) -> Update:
        self.calls += 1
        update = super().process_payment(state)
        if self.calls == 1:
            raise ConnectionError("connection reset after the charge was committed")
        return update


def test_flaky_payment_is_retried_and_charges_once(store: Store) -> None:
    """A payment attempt that fails after charging is retried and the order is charged once."""
    nodes = FlakyPayment(store)
    graph = build_order_graph(Orchestrator(), store, nodes=nodes)
    with no_backoff():
        result = graph.invoke({"order_id": "o-3", "product_id": "prod-1"})
    assert result["status"] == "completed"
    assert nodes.calls == 2
    assert store.count("payments", "o-3") == 1


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ({"product_id": "prod-1"}, "order_id: missing (required)"),
        ({"order_id": "o-4"}, "product_id: missing (required)"),
        ({"order_id": "o-4", "product_id": "prod-1", "qty": 2}, "qty: unknown field"),
        ({"order_id": "o-4", "product_id": "prod-1", "quantity": "2"}, "quantity: '2' is not"),
    ],
)
def test_a_malformed_order_is_refused_before_the_run(
    store: Store, order: dict[str, Any], problem: str
) -> None:
    """The graph's input schema names each bad field; nothing runs."""
    graph = build_order_graph(Orchestrator(), store)
    with pytest.raises(InputError, match="input of graph 'order-processing'") as caught:
        graph.invoke(order)
    assert problem in "\n".join(caught.value.problems)
    assert store.count("reservations", "o-4") == 0


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ({"order_id": "o-4", "product_id": "prod-1", "quantity": 0}, "quantity"),
        ({"order_id": "o-4", "product_id": "prod-1", "quantity": -1}, "quantity"),
        ({"order_id": "o-4", "product_id": "nope"}, "unknown product"),
    ],
)
def test_invalid_order_fails_at_once(store: Store, order: dict[str, Any], problem: str) -> None:
    """An invalid order fails on the first attempt of validate, with a NonRetryableError cause."""
    graph = build_order_graph(Orchestrator(), store)
    with pytest.raises(NodeFailedError) as caught:
        graph.invoke(order)
    error = caught.value
    assert isinstance(error.__cause__, NonRetryableError)
    assert problem in str(error.__cause__)
    assert (error.node, error.attempt) == ("validate", 1)
    assert store.count("reservations", "o-4") == 0


def run_demo(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``python -m examples.order_processing ARGS`` from ``cwd``, without an OpenAI key; its
    stdout (it must exit 0)."""
    environ = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    environ |= {"PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.order_processing", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_demo_runs_both_orders_locally() -> None:
    """``--local``: the graph in process, both routes printed node by node."""
    out = run_demo("--local", cwd=ROOT)
    assert "status: completed" in out
    assert "status: out_of_stock" in out
    assert "skipped    process_payment" in out


def test_demo_starts_the_embedded_server_where_none_answers(tmp_path: Path) -> None:
    """The one-process demo: no server at the configured address, so it starts the embedded one
    (state under ``.belugaflow/``) and runs the three orders durably, approving the large one."""
    address = f"127.0.0.1:{free_port()}"
    out = run_demo(cwd=tmp_path, env={"BELUGAFLOW__TEMPORAL__ADDRESS": address})
    assert f"Temporal at {address}: embedded dev server" in out
    assert (tmp_path / ".belugaflow" / "temporal.db").is_file()
    assert "B-2001  => completed" in out
    assert "B-2002  => out_of_stock" in out
    assert "B-2003  reviewer sends approve" in out
    assert "B-2003  => completed" in out


def test_demo_uses_a_server_that_answers(tmp_path: Path, temporal_server: DevServer) -> None:
    out = run_demo(cwd=tmp_path, env={"BELUGAFLOW__TEMPORAL__ADDRESS": temporal_server.address})
    assert f"Temporal at {temporal_server.address}: running server" in out
    assert "B-2001  => completed" in out
    assert not (tmp_path / ".belugaflow" / "temporal.db").exists()
