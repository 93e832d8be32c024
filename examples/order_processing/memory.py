"""The shop's memory of past orders: what was decided, and how each order ended.

Every order whose outcome is known is saved under its customer tier (scope
``orders:<tier>``), its text being the order — ``"Ice pick (prod-2) x 2, 9000 cents"`` — and
its outcome in the entry's data: ``approved`` (the order completed), ``rejected`` (a reviewer
rejected it) or ``charged_back`` (:func:`record_chargeback`, after it completed). The
``decide`` node of the order graph recalls the :data:`RECALL` most similar past orders of the
same tier and gives them to the decision: to a model as text, to the rule as a count
(``similar_rejected``, orders at least :data:`SIMILAR` alike that ended rejected or charged
back), so a reviewer's rejection of a pattern sends the next similar order to a reviewer too.

Entry ids are the order id and the outcome (``"A-1/rejected"``): saving again — a retried
node, an order run twice — adds nothing. The memory is a
:class:`~belugaflow.memory.VectorMemory` on a SQLite file next to the shop database
(``memory.db``), with the offline :class:`~belugaflow.memory.LocalEmbedder`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from belugaflow import Config
from belugaflow.memory import (
    Entry,
    LocalEmbedder,
    Recalled,
    SQLiteStore,
    VectorMemory,
    embedder_from_config,
    memory_store_from_config,
    retention_from_config,
)

__all__ = [
    "FLAGGED",
    "KIND",
    "MEMORY_FILE",
    "ORDER_TEXT",
    "RECALL",
    "SCOPE",
    "SIMILAR",
    "PastOrder",
    "memory_file",
    "memory_from_config",
    "order_memory",
    "order_text",
    "others",
    "outcome_of",
    "past_orders",
    "record_chargeback",
    "remember_outcome",
    "shown",
    "similar_rejected",
]

_log = logging.getLogger(__name__)

MEMORY_FILE = "memory.db"
"""The memory's file name, in the shop database's directory."""
SCOPE = "orders:{customer_tier}"
"""Past orders are kept and recalled per customer tier (a template filled from the state)."""
ORDER_TEXT = "{product_name} ({product_id}) x {quantity}, {amount} cents"
"""An order as the embedder reads it, filled from the state (``validate`` adds the product
name): the query of a recall and the text of a saved order alike."""
KIND = "order"
"""The kind of the entries saved here."""
RECALL = 5
"""How many past orders a decision recalls."""

SIMILAR = 0.86
"""Cosine similarity from which a recalled order counts as *the same pattern*.

Measured with :class:`~belugaflow.memory.LocalEmbedder` on texts of :data:`ORDER_TEXT`
(``tests/examples/test_order_memory.py`` measures them again and prints them): the same
product at another quantity (1 to 50 items) scores 0.93 to 0.99; another product of the same
sort (a plush toy for a plush toy, a mug for a mug, an axe for a pick) 0.71 to 0.79; the
shop's other products 0.45 to 0.59. 0.86 lies midway between the first two: it counts the
same product at any quantity, and nothing else. The product name leads the text: with the
quantity first (``"2 x Ice pick (prod-2), ..."``) the same product fell to 0.89 and products
of the same sort rose to 0.85, too close to tell apart."""

FLAGGED = frozenset({"rejected", "charged_back"})
"""Outcomes that make a similar new order wait for a reviewer."""

_OUTCOME_WORDS = {
    "approved": "approved",
    "rejected": "rejected after review",
    "charged_back": "charged back",
}


@dataclass(frozen=True, slots=True)
class PastOrder:
    """A recalled order, as the decision record names it."""

    id: str
    """The memory entry's id (``<order id>/<outcome>``)."""
    order_id: str
    outcome: str
    """``approved``, ``rejected`` or ``charged_back``."""
    score: float
    """Cosine similarity to the order being decided (1 = the same text)."""

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "score": round(self.score, 4)}


def memory_file(shop: str | Path) -> Path:
    """The memory file that goes with the shop database ``shop``: ``memory.db`` beside it."""
    return Path(shop).with_name(MEMORY_FILE)


_memories: dict[Path, VectorMemory] = {}
_memories_lock = threading.Lock()


def order_memory(path: str | Path) -> VectorMemory:
    """The order memory on the SQLite file ``path``: one per file and process.

    Cheap to call: the file opens on first use, and the embedder's model loads on the first
    recall or save (about 0.2 s; the first use on a machine also makes its int8 model, ~3 s,
    kept in ``$BELUGAFLOW_CACHE_DIR``, default ``~/.cache/belugaflow``), so a worker starts
    as fast as before and pays it on its first decision.
    """
    key = Path(path).resolve()
    with _memories_lock:
        memory = _memories.get(key)
        if memory is None:
            embedder = LocalEmbedder()
            store = SQLiteStore(key, embedder=embedder.name)
            memory = _memories[key] = VectorMemory(embedder, store, k=RECALL)
        return memory


def memory_from_config(config: Config) -> VectorMemory:
    """The order memory on the store, embedder and retention of ``config``'s ``memory:``
    section (:func:`~belugaflow.memory.memory_store_from_config` and its siblings).
    :data:`SIMILAR` was measured with the local embedder: another model needs its own."""
    embedder = embedder_from_config(config)
    store = memory_store_from_config(config, embedder=embedder)
    return VectorMemory(embedder, store, k=RECALL, retention=retention_from_config(config))


def order_text(order: Mapping[str, Any]) -> str:
    """The text of ``order`` (a state with the keys of :data:`ORDER_TEXT`)."""
    return ORDER_TEXT.format_map(order)


def others(recalled: Recalled, order_id: str) -> Recalled:
    """``recalled`` without the entries of order ``order_id`` itself (an order run again
    finds its own first outcome: that is no *other* order's lesson)."""
    kept = [
        (entry, score)
        for entry, score in zip(recalled.entries, recalled.scores, strict=True)
        if entry.data.get("order_id") != order_id
    ]
    entries = tuple(entry for entry, _ in kept)
    return dataclasses.replace(recalled, entries=entries, scores=tuple(s for _, s in kept))


def past_orders(recalled: Recalled) -> list[PastOrder]:
    """The recalled orders, most similar first."""
    found = []
    for entry, score in zip(recalled.entries, recalled.scores, strict=True):
        order_id = str(entry.data.get("order_id", entry.id.split("/")[0]))
        found.append(PastOrder(entry.id, order_id, str(entry.data.get("outcome")), score))
    return found


def similar_rejected(past: list[PastOrder]) -> int:
    """How many distinct orders at least :data:`SIMILAR` alike ended rejected or charged
    back."""
    return len({p.order_id for p in past if p.outcome in FLAGGED and p.score >= SIMILAR})


def shown(recalled: Recalled) -> Recalled:
    """``recalled`` with each order's outcome (and the reviewer's note) after its text: what a
    model is shown. The outcome is kept out of the embedded text, so it does not move the
    similarity (it would by up to 0.18: "rejected after review" less than "approved")."""
    entries = []
    for entry in recalled.entries:
        outcome = str(entry.data.get("outcome"))
        said = f"{entry.text}: {_OUTCOME_WORDS.get(outcome, outcome)}"
        note = entry.data.get("note")
        said += f" ({note})" if note else ""
        entries.append(dataclasses.replace(entry, text=said))
    return dataclasses.replace(recalled, entries=tuple(entries))


def outcome_of(state: Mapping[str, Any]) -> str | None:
    """The outcome worth remembering of a finished order, or None: ``approved`` once it
    completed, ``rejected`` when a reviewer rejected it. Orders out of stock, rejected by
    the decision itself or never reviewed in time teach nothing about the customer."""
    status = state.get("status")
    if status == "completed":
        return "approved"
    review = state.get("review")
    if status == "rejected" and isinstance(review, Mapping) and review.get("verdict") == "reject":
        return "rejected"
    return None


async def remember_outcome(memory: VectorMemory, state: Mapping[str, Any]) -> str | None:
    """Save the finished order's outcome (:func:`outcome_of`) under its tier; the entry id, or
    None when there is nothing to remember. Saving it again adds nothing."""
    outcome = outcome_of(state)
    if outcome is None:
        return None
    review = state.get("review")
    data: dict[str, Any] = {
        "order_id": state["order_id"],
        "outcome": outcome,
        "product_id": state["product_id"],
        "quantity": state["quantity"],
        "amount": state["amount"],
        "reviewed": isinstance(review, Mapping),
    }
    if isinstance(review, Mapping) and review.get("note"):
        data["note"] = str(review["note"])
    id = f"{state['order_id']}/{outcome}"
    scope = SCOPE.format_map(state)
    await memory.save(scope, order_text(state), kind=KIND, data=data, id=id)
    return id


async def record_chargeback(order_id: str, memory: VectorMemory) -> str:
    """Record that the completed order ``order_id`` was charged back: a new entry beside its
    ``approved`` one, so similar orders of its tier go to a reviewer from now on. Returns the
    entry id (``<order id>/charged_back``); recording it again adds nothing.

    Raises:
        LookupError: the memory holds no completed order ``order_id``.
    """
    approved = await _find(memory, f"{order_id}/approved")
    if approved is None:
        raise LookupError(
            f"no completed order {order_id!r} in the order memory {memory.store!r}: only an"
            " order that completed can be charged back"
        )
    id = f"{order_id}/charged_back"
    data = {**approved.data, "outcome": "charged_back"}
    await memory.save(approved.scope, approved.text, kind=KIND, data=data, id=id)
    return id


async def _find(memory: VectorMemory, id: str) -> Entry | None:
    for scope in await memory.store.scopes("orders:"):
        for entry in await memory.store.entries(scope, kind=KIND):
            if entry.id == id:
                return entry
    return None
