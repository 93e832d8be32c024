"""The memory kinds on every store (in process, SQLite, Postgres): what each keeps, what it
prunes, idempotent saves, recall by meaning with the real local embedder, nodes that declare
what they read — and bad input that is refused with nothing written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from tests.memory.conftest import Backend

from belugaflow import InputError, Orchestrator
from belugaflow.llms import RulesModel
from belugaflow.memory import (
    BufferMemory,
    DimensionError,
    Entry,
    LocalEmbedder,
    PostgresStore,
    Recalled,
    Store,
    StoreUnavailableError,
    SummaryMemory,
    TokenBufferMemory,
    VectorMemory,
    WindowMemory,
    estimate_tokens,
    reads,
    step_id,
)


def texts(recalled: Recalled) -> list[str]:
    return [entry.text for entry in recalled.entries]


async def test_buffer_keeps_everything_and_saves_an_id_once(store: Store) -> None:
    memory = BufferMemory(store)
    assert await memory.save("c-1", "first", id="a") is True
    assert await memory.save("c-1", "first again", id="a") is False  # a retried step
    assert await memory.save_step("c-1", {"q": "2+2"}, {"a": 4}, id="b")
    await memory.save("c-2", "someone else's")
    recalled = await memory.load("c-1")
    assert texts(recalled) == ["first", 'input: {"q": "2+2"}\noutput: {"a": 4}']
    assert recalled.entries[1].kind == "step" and recalled.entries[1].data["outputs"] == {"a": 4}
    assert await memory.clear("c-1") == 2
    assert not await memory.load("c-1") and texts(await memory.load("c-2")) == ["someone else's"]


async def test_window_drops_the_oldest(store: Store) -> None:
    memory = WindowMemory(3, store)
    for n in range(5):
        await memory.save("chat", f"message {n}")
    assert texts(await memory.load("chat")) == ["message 2", "message 3", "message 4"]
    assert await store.scopes() == {"chat": 3}  # pruned in the store, not only on load


async def test_token_buffer_prunes_at_the_limit(store: Store) -> None:
    memory = TokenBufferMemory(25, store)
    ten = "x" * 40  # 10 tokens by the estimate
    assert estimate_tokens(ten) == 10
    for n in range(4):
        await memory.save("chat", f"{n}{ten[1:]}")
    assert [t[0] for t in texts(await memory.load("chat"))] == ["2", "3"]  # 20 <= 25 < 30
    assert await store.scopes() == {"chat": 2}
    await memory.save("chat", "y" * 400)  # 100 tokens: alone over the limit, but kept
    assert texts(await memory.load("chat")) == ["y" * 400]


async def test_token_buffer_counts_with_the_tokenizer_given(store: Store) -> None:
    memory = TokenBufferMemory(3, store, count=lambda text: len(text.split()))
    for text in ("one two", "three", "four five"):
        await memory.save("s", text)
    assert texts(await memory.load("s")) == ["three", "four five"]


async def test_summary_is_refreshed_as_entries_pass_the_budget(store: Store) -> None:
    calls: list[tuple[str | None, list[str]]] = []

    async def summarize(previous: str | None, entries: Sequence[Entry]) -> str:
        calls.append((previous, [e.text for e in entries]))
        return " + ".join(filter(None, [previous, *(e.text[:2] for e in entries)]))

    memory = SummaryMemory(summarize, 10, store)  # 10 tokens: the 4th note of 3 passes it
    for n in range(4):
        await memory.save("s", f"n{n} note abc")
    recalled = await memory.load("s")
    assert calls == [(None, ["n0 note abc", "n1 note abc"])]
    assert recalled.summary == "n0 + n1" and texts(recalled) == ["n2 note abc", "n3 note abc"]
    for n in range(4, 6):
        await memory.save("s", f"n{n} note abc")
    recalled = await memory.load("s")
    assert calls[-1] == ("n0 + n1", ["n2 note abc", "n3 note abc"])
    assert recalled.summary == "n0 + n1 + n2 + n3" and texts(recalled) == [
        "n4 note abc",
        "n5 note abc",
    ]
    assert "Summary so far: n0 + n1 + n2 + n3" in recalled.text()
    assert await store.scopes() == {"s": 3}  # one summary, two notes: the folded ones gone


def test_a_rules_table_cannot_summarize() -> None:
    with pytest.raises(ValueError, match="a rules table cannot write a summary"):
        SummaryMemory(RulesModel([], default="x"), 100)


NOTES = {
    "refund": "Customer asked for a refund because the parcel arrived damaged.",
    "address": "Shipping address changed to the new office before dispatch.",
    "fraud": "Card payment flagged as fraud; the bank reversed the charge.",
    "late": "Delivery was three days late and the customer complained.",
}


async def test_vector_recall_ranks_by_meaning(backend: Backend, local: LocalEmbedder) -> None:
    memory = VectorMemory(local, backend.open(), k=2)
    for key, text in NOTES.items():
        await memory.save("tier:gold", text, kind="note", data={"topic": key}, id=key)
    await memory.save("tier:new", NOTES["fraud"], id="other-scope")
    recalled = await memory.load("tier:gold", query="the bank charged the payment back")
    assert recalled.entries[0].id == "fraud"
    assert recalled.scores[0] > recalled.scores[1]
    damaged = await memory.load("tier:gold", query="my package came broken, money back please")
    assert damaged.entries[0].id == "refund"
    only = await memory.load("tier:gold", query="payment", where={"topic": "late"})
    assert [e.id for e in only.entries] == ["late"]
    newest = await memory.load("tier:gold")  # no query: the newest k
    assert [e.id for e in newest.entries] == ["fraud", "late"]
    assert newest.to_dict()["entries"][0]["data"] == {"topic": "fraud"}


async def test_a_node_declares_what_it_reads(store: Store) -> None:
    """A graph node reads the customer's memory, filled in from the state, and saves to it
    under an id of its run: a second run sees the first's note."""
    memory = BufferMemory(store)
    seen: list[list[str]] = []

    @reads(memory, "customer:{customer}")
    async def remember(state: dict[str, Any], recalled: Recalled) -> dict[str, Any]:
        seen.append(texts(recalled))
        await memory.save(f"customer:{state['customer']}", state["note"], id=step_id("note"))
        return {"recalled": len(recalled.entries)}

    orch = Orchestrator()
    graph = orch.create_graph(name="remembering")
    graph.add_node("remember", remember)
    graph.set_entry_point(["remember"])
    graph.set_finish_point(["remember"])
    compiled = graph.compile()
    assert (await compiled.ainvoke({"customer": "c7", "note": "likes tea"}))["recalled"] == 0
    assert (await compiled.ainvoke({"customer": "c7", "note": "hates rain"}))["recalled"] == 1
    assert seen == [[], ["likes tea"]]
    [first, _] = (await memory.load("customer:c7")).entries
    assert first.id.endswith("/remember/note")  # run id / node / name

    with pytest.raises(Exception, match="customer") as failed:
        await compiled.ainvoke({"note": "no customer"})
    assert "the state cannot fill it" in str(failed.value)


def test_step_id_outside_a_node_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="pass id= from your own data"):
        step_id("x")


async def test_bad_input_is_refused_and_nothing_is_written(
    store: Store, local: LocalEmbedder
) -> None:
    memory = BufferMemory(store)
    with pytest.raises(InputError, match="scope: must not be empty"):
        await memory.save("", "text")
    with pytest.raises(InputError, match="text: must not be empty"):
        await memory.save("s", "  ")
    assert await store.scopes() == {}

    narrow = Entry("s", "three wide", id="w3")
    await store.add([narrow], np.array([[1.0, 0.0, 0.0]], dtype=np.float32))
    with pytest.raises(DimensionError, match="384 dimensions; this store holds 3"):
        await VectorMemory(local, store).save("s", "a sentence of 384 dimensions")
    assert await store.scopes() == {"s": 1}
    for bad in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            WindowMemory(bad)


async def test_a_store_that_is_down_is_a_clear_retryable_error() -> None:
    store = PostgresStore("postgresql://memory:secret@127.0.0.1:1/memory?connect_timeout=2")
    with pytest.raises(StoreUnavailableError) as down:
        await BufferMemory(store).save("s", "text")
    assert down.value.retryable and "127.0.0.1:1" in str(down.value)
    assert "secret" not in str(down.value)
