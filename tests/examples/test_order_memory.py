"""The use case's memory: the order graph's decision recalls the most similar past orders of
the customer's tier and how they ended, so a reviewer's rejection (or a chargeback) sends the
next similar order to a reviewer; outcomes are saved once per order and outcome.

The graph runs in process here, with a real :class:`~belugaflow.memory.LocalEmbedder` on an
in-process store; on Temporal through ``belugaflow up`` (``tests/cli/test_up.py``) and with
the example's SQLite memory (``test_the_app_keeps_its_memory_beside_the_shop``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.llms.fake_openai import completion, fake_openai
from tests.llms.fake_server import FakeServer, running

from belugaflow import Orchestrator
from belugaflow.config import load_config_text
from belugaflow.memory import InProcessStore, LocalEmbedder, SQLiteStore, VectorMemory
from belugaflow.resilience import BreakerRegistry
from examples.order_processing import app
from examples.order_processing.activities import Decider
from examples.order_processing.db import Store
from examples.order_processing.decision import LLMDecider, decider_from_config
from examples.order_processing.graph import build_order_graph
from examples.order_processing.memory import (
    SIMILAR,
    memory_file,
    order_memory,
    order_text,
    record_chargeback,
)

WAIT = 30.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    """One embedder for the module: its model loads once per process anyway."""
    return LocalEmbedder()


@pytest.fixture
def memory(embedder: LocalEmbedder) -> VectorMemory:
    return VectorMemory(embedder, InProcessStore(), k=5)


class Shop:
    """The order graph in process on a fresh shop, deciding with ``decide``."""

    def __init__(self, store: Store, memory: VectorMemory, decide: Decider | None = None) -> None:
        self.orch = Orchestrator()
        self.graph = build_order_graph(self.orch, store, decide=decide, memory=memory)

    async def run(self, order: dict[str, Any], verdict: str | None = None) -> dict[str, Any]:
        """Run ``order``; when it waits for a reviewer, send ``verdict`` (it must wait
        exactly when a verdict is given)."""
        handle = await self.orch.start(self.graph, order, engine="local")
        result = asyncio.ensure_future(handle.result())
        async with asyncio.timeout(WAIT):
            while verdict is not None:
                if result.done():
                    pytest.fail(f"{order['order_id']} finished without a review: {result.result()}")
                if (await handle.query("progress"))["status"] == "waiting":
                    note = f"{verdict}: seen this pattern before"
                    await handle.signal("review", {"verdict": verdict, "note": note})
                    break
                await asyncio.sleep(0.02)
            state: dict[str, Any] = await result
        return state


def pattern(order_id: str, quantity: int, **more: Any) -> dict[str, Any]:
    """An ice-pick order of a standard customer: 45 USD each, below the auto-approval limit."""
    return {"order_id": order_id, "product_id": "prod-2", "quantity": quantity, **more}


async def test_the_threshold_separates_the_same_product_from_any_other(
    embedder: LocalEmbedder,
) -> None:
    """The similarity of order texts, measured: the same product at any quantity scores above
    ``SIMILAR``, a product of the same sort and the shop's other products below it."""
    products = {
        "prod-1": ("Beluga plush", 1999),
        "prod-2": ("Ice pick", 4500),
        "prod-3": ("Narwhal mug", 1250),
    }
    kin = {  # not in the shop: products of the same sort as its own
        "prod-1": [("prod-4", "Narwhal plush", 1999), ("prod-5", "Orca plush", 2499)],
        "prod-2": [("prod-6", "Ice axe", 4500)],
        "prod-3": [("prod-7", "Beluga mug", 1250)],
    }

    async def vector(product_id: str, name: str, price: int, quantity: int) -> Any:
        order = {"product_id": product_id, "product_name": name, "quantity": quantity}
        [row] = await embedder.embed([order_text({**order, "amount": price * quantity})])
        return row

    same, related, other = [], [], []
    for product_id, (name, price) in products.items():
        rows = [await vector(product_id, name, price, q) for q in (1, 2, 3, 5, 10, 20, 50)]
        same += [float(a @ b) for a, b in itertools.combinations(rows, 2)]
        for q, kin_q in itertools.product((1, 3), (1, 3)):
            for kin_id, kin_name, kin_price in kin[product_id]:
                mine = await vector(product_id, name, price, q)
                related.append(float(mine @ await vector(kin_id, kin_name, kin_price, kin_q)))
    for (a, (a_name, a_price)), (b, (b_name, b_price)) in itertools.combinations(
        products.items(), 2
    ):
        for q, b_q in itertools.product((1, 3), (1, 3)):
            mine = await vector(a, a_name, a_price, q)
            other.append(float(mine @ await vector(b, b_name, b_price, b_q)))
    print(
        f"\nsimilarity of order texts (threshold {SIMILAR}):"
        f"\n  same product, 1-50 items: {min(same):.3f}-{max(same):.3f} (mean {np.mean(same):.3f})"
        f"\n  a product of the same sort: {min(related):.3f}-{max(related):.3f}"
        f"\n  the shop's other products: {min(other):.3f}-{max(other):.3f}"
    )
    assert min(same) > SIMILAR + 0.05
    assert max(related) < SIMILAR - 0.05
    assert max(other) < max(related)


async def test_a_reviewers_rejection_sends_the_next_similar_order_to_review(
    store: Store, memory: VectorMemory
) -> None:
    """A reviewer rejects two ice picks; the next ice-pick order of the same tier, which the
    rule alone would approve, recalls that rejection and waits for a reviewer; the decision
    record names what was recalled. Another product, or another tier, is approved."""
    shop = Shop(store, memory)
    first = await shop.run(pattern("m-1", 2, review_threshold=5000), verdict="reject")
    assert first["status"] == "rejected"
    assert first["decision"]["action"] == "approve"  # the threshold sent it to the reviewer
    assert first["decision"]["recalled"] == [] and first["decision"]["similar_rejected"] == 0
    assert first["remembered"] == "m-1/rejected"

    second = await shop.run(pattern("m-2", 1), verdict="approve")
    decision = second["decision"]
    assert decision["action"] == "manual_review"
    assert decision["reason"] == (
        "1 similar past order(s) of standard customers ended rejected or charged back"
    )
    [recalled] = decision["recalled"]
    assert recalled["id"] == "m-1/rejected" and recalled["order_id"] == "m-1"
    assert recalled["outcome"] == "rejected" and recalled["score"] >= SIMILAR
    assert decision["similar_rejected"] == 1
    assert second["status"] == "completed" and second["remembered"] == "m-2/approved"

    plush = await shop.run({"order_id": "m-3", "product_id": "prod-1", "quantity": 1})
    assert plush["decision"]["action"] == "approve"
    assert plush["decision"]["similar_rejected"] == 0
    assert all(r["score"] < SIMILAR for r in plush["decision"]["recalled"])

    gold = await shop.run(pattern("m-4", 1, customer_tier="gold"))
    assert gold["decision"]["action"] == "approve"
    assert gold["decision"]["recalled"] == []  # another tier: another scope

    scopes = await memory.store.scopes()
    assert scopes == {"orders:standard": 3, "orders:gold": 1}


async def test_an_outcome_is_saved_once_and_only_a_known_one(
    store: Store, memory: VectorMemory
) -> None:
    """The same order run twice saves its outcome once (its id is the order id + outcome),
    and does not recall itself the second time; an order out of stock saves nothing."""
    shop = Shop(store, memory)
    for _ in range(2):
        state = await shop.run({"order_id": "s-1", "product_id": "prod-1", "quantity": 2})
        assert state["remembered"] == "s-1/approved"
        assert state["decision"]["recalled"] == []
    out = await shop.run({"order_id": "s-2", "product_id": "prod-3"})
    assert out["status"] == "out_of_stock" and "remembered" not in out
    [entry] = await memory.store.entries("orders:standard")
    assert entry.id == "s-1/approved" and entry.kind == "order"
    assert entry.text == "Beluga plush (prod-1) x 2, 3998 cents"
    assert entry.data == {
        "order_id": "s-1",
        "outcome": "approved",
        "product_id": "prod-1",
        "quantity": 2,
        "amount": 3998,
        "reviewed": False,
    }


async def test_a_chargeback_sends_similar_orders_to_review(
    store: Store, memory: VectorMemory
) -> None:
    """A completed order charged back: the next similar order waits for a reviewer. Recording
    the chargeback again adds nothing; an order never completed cannot be charged back."""
    shop = Shop(store, memory)
    await shop.run({"order_id": "c-1", "product_id": "prod-1", "quantity": 1})
    assert await record_chargeback("c-1", memory) == "c-1/charged_back"
    assert await record_chargeback("c-1", memory) == "c-1/charged_back"
    assert (await memory.store.scopes()) == {"orders:standard": 2}
    with pytest.raises(LookupError, match="no completed order 'nope'"):
        await record_chargeback("nope", memory)

    state = await shop.run(
        {"order_id": "c-2", "product_id": "prod-1", "quantity": 4}, verdict="reject"
    )
    recalled = {(r["id"], r["outcome"]) for r in state["decision"]["recalled"]}
    assert recalled == {("c-1/approved", "approved"), ("c-1/charged_back", "charged_back")}
    assert state["decision"]["similar_rejected"] == 1  # one order, however many entries
    assert state["decision"]["action"] == "manual_review"
    assert state["remembered"] == "c-2/rejected"


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    yield from running(fake_openai())


async def test_a_model_is_shown_the_recalled_orders_and_their_outcomes(
    store: Store, memory: VectorMemory, openai_server: FakeServer
) -> None:
    """An LLM decider gets the recalled orders, each with its outcome and the reviewer's
    note, under their own heading, and ``similar_rejected`` in its context."""
    config = load_config_text(
        f"""
llm:
  provider: openai
  openai: {{api_key: sk-test, base_url: "{openai_server.url}/v1", model: gpt-test}}
"""
    )
    decider = decider_from_config(config, breakers=BreakerRegistry())
    assert isinstance(decider, LLMDecider)
    try:
        shop = Shop(store, memory, decide=decider)
        reply = {"choice": "reject", "reason": "resale pattern", "confidence": 0.8}
        openai_server.script(completion(json.dumps({**reply, "choice": "manual_review"})))
        await shop.run(pattern("l-1", 2), verdict="reject")
        openai_server.script(completion(json.dumps(reply)))
        state = await shop.run(pattern("l-2", 3))
    finally:
        await decider.aclose()
    assert state["status"] == "rejected" and state["decision"]["provider"] == "openai"
    assert "remembered" not in state  # rejected by the decision itself: nothing learnt
    first, second = (r.body["messages"][1]["content"] for r in openai_server.requests)
    assert "Recalled from memory" not in first
    assert '"similar_rejected": 1' in second
    recalled = second.split("Recalled from memory (earlier, similar cases):\n")[1]
    score = state["decision"]["recalled"][0]["score"]
    assert recalled == (
        "- Ice pick (prod-2) x 2, 9000 cents: rejected after review"
        f" (reject: seen this pattern before) (similarity {score:.2f})"
    )


async def test_the_app_keeps_its_memory_beside_the_shop(tmp_path: Path) -> None:
    """``create_app`` builds the order memory on ``memory.db`` beside the shop database, one
    per file and process; an outcome saved by one app is recalled by another."""
    shop = Store.create(tmp_path / "orders.db")
    memory = order_memory(memory_file(shop.path))
    assert memory is order_memory(tmp_path / "memory.db")
    assert isinstance(memory.store, SQLiteStore)
    assert memory.store.path == (tmp_path / "memory.db").resolve()
    orch = app.create_app(store=shop)
    state = await orch.run(
        orch.graph("order-processing"), {"order_id": "f-1", "product_id": "prod-1"}
    )
    assert state["remembered"] == "f-1/approved"
    assert (tmp_path / "memory.db").is_file()
    recalled = await memory.load("orders:standard", query="Beluga plush (prod-1) x 3, 5997 cents")
    assert [e.id for e in recalled.entries] == ["f-1/approved"]


async def test_a_memory_that_cannot_be_used_does_not_fail_the_order(
    store: Store, embedder: LocalEmbedder, tmp_path: Path
) -> None:
    """A memory file that cannot be opened: the rule decides without it (the decision record
    says why) and the order completes; its outcome is not saved, and the run goes on."""
    (tmp_path / "blocked").write_text("a file where the memory's directory should be")
    broken = VectorMemory(embedder, SQLiteStore(tmp_path / "blocked" / "memory.db"))
    state = await Shop(store, broken).run({"order_id": "x-1", "product_id": "prod-1"})
    assert state["status"] == "completed" and "remembered" not in state
    decision = state["decision"]
    assert decision["action"] == "approve" and "recalled" not in decision
    assert "the SQLite memory store" in decision["memory_problem"]
    assert "blocked" in decision["memory_problem"]


async def test_a_memory_section_in_the_config_names_the_store(tmp_path: Path) -> None:
    """With a ``memory:`` section, ``create_app`` builds the order memory from it (here a
    store in this process), not beside the shop."""
    config = load_config_text("memory: {store: {kind: inprocess}}")
    orch = app.create_app(config, store=Store.create(tmp_path / "orders.db"))
    graph = orch.graph("order-processing")
    first = await orch.run(graph, {"order_id": "k-1", "product_id": "prod-1"})
    second = await orch.run(graph, {"order_id": "k-2", "product_id": "prod-1", "quantity": 2})
    assert first["remembered"] == "k-1/approved"
    assert [r["id"] for r in second["decision"]["recalled"]] == ["k-1/approved"]
    assert not (tmp_path / "memory.db").exists()


def test_a_chargeback_from_the_shell(tmp_path: Path) -> None:
    """``python -m examples.order_processing --chargeback ID`` records it in the memory beside
    the shop of ``$BELUGAFLOW_ORDERS_DB``; an unknown order, or no memory, exits 1."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), app.DB_ENV: str(tmp_path / "orders.db")}

    def chargeback(order_id: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "examples.order_processing", "--chargeback", order_id]
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    missing = chargeback("h-1")
    assert missing.returncode == 1 and "no order memory at" in missing.stderr
    orch = app.create_app(store=Store.create(tmp_path / "orders.db"))
    asyncio.run(
        orch.run(orch.graph("order-processing"), {"order_id": "h-1", "product_id": "prod-2"})
    )
    done = chargeback("h-1")
    assert done.returncode == 0, done.stderr
    assert f"recorded h-1/charged_back in {tmp_path / 'memory.db'}" in done.stdout
    unknown = chargeback("h-2")
    assert unknown.returncode == 1 and "no completed order 'h-2'" in unknown.stderr
    memory = order_memory(tmp_path / "memory.db")
    ids = [e.id for e in asyncio.run(memory.store.entries("orders:standard"))]
    assert ids == ["h-1/approved", "h-1/charged_back"]
