"""The memory kinds: what a step saves under a scope, and what the next step gets back.

Every kind keeps its entries in a :class:`~belugaflow.memory.Store` (in process by default;
SQLite or Postgres to outlive the process), and prunes on save, so a store holds what the kind
promises and no more: a window keeps the last ``k``, a token buffer the newest entries that fit
``max_tokens``, a summary a running summary and the entries not yet in it. Saves are
idempotent by entry id (:func:`step_id` derives one from the run and node), so a retried step
never saves twice. On top of what a kind keeps, a :class:`~belugaflow.memory.Retention`
(``retention=``) caps every scope by age and count, also on every save.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import InputError
from ._contract import Embedder, Entry, Store
from ._inprocess import InProcessStore
from ._retention import Retention

if TYPE_CHECKING:
    from ..llms import ChatModel

__all__ = [
    "BufferMemory",
    "Memory",
    "Recalled",
    "SummaryMemory",
    "TokenBufferMemory",
    "VectorMemory",
    "WindowMemory",
    "estimate_tokens",
]

TokenCounter = Callable[[str], int]
Summarizer = Callable[[str | None, Sequence[Entry]], Awaitable[str]]


def estimate_tokens(text: str) -> int:
    """About four characters a token: OpenAI's rule of thumb for English text, within ~20 %
    for the tokenizers of current models. Pass a real tokenizer's count where you have one
    (``lambda text: len(encoding.encode(text))``)."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True, slots=True)
class Recalled:
    """What a memory gave back for a scope: entries (oldest first; for recall, most similar
    first, with their ``scores``) and, for a summary memory, the running ``summary``."""

    scope: str
    entries: tuple[Entry, ...] = ()
    scores: tuple[float, ...] = ()
    """Cosine similarity of each entry to the query (recall only)."""
    summary: str | None = None

    def text(self) -> str:
        """The recalled context as lines for a prompt ("" when there is none)."""
        lines = [f"Summary so far: {self.summary}"] if self.summary else []
        for index, entry in enumerate(self.entries):
            score = f" (similarity {self.scores[index]:.2f})" if self.scores else ""
            lines.append(f"- {entry.text}{score}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: what a decision record keeps of what was recalled."""
        entries = []
        for index, entry in enumerate(self.entries):
            row: dict[str, Any] = {"id": entry.id, "kind": entry.kind, "text": entry.text}
            row["data"] = dict(entry.data)
            if self.scores:
                row["score"] = round(self.scores[index], 4)
            entries.append(row)
        found: dict[str, Any] = {"scope": self.scope, "entries": entries}
        if self.summary is not None:
            found["summary"] = self.summary
        return found

    def __bool__(self) -> bool:
        return bool(self.entries or self.summary)


class Memory(ABC):
    """Saves entries under a scope, and loads, for a step, what its kind keeps.

    Args:
        store: Where entries live. Default: an :class:`~belugaflow.memory.InProcessStore`
            (gone with the process; use a SQLite or Postgres store to keep them).
        retention: How long and how many entries a scope keeps, applied to the scope on
            every save, after what the kind itself prunes. Default: no limit.
    """

    def __init__(self, store: Store | None = None, *, retention: Retention | None = None) -> None:
        self.store: Store = store if store is not None else InProcessStore()
        self.retention = retention if retention is not None else Retention()

    async def save(
        self,
        scope: str,
        text: str,
        *,
        kind: str = "note",
        data: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> bool:
        """Save ``text`` under ``scope``; True if saved, False if ``id`` was already saved
        (a retried step: nothing is saved twice).

        Raises:
            InputError: an empty scope or text.
        """
        if not scope or not text.strip():
            what = "scope" if not scope else "text"
            raise InputError("a memory entry", [f"{what}: must not be empty"])
        options: dict[str, Any] = {"kind": kind, "data": dict(data or {})}
        if id is not None:
            options["id"] = id
        return await self._add(Entry(scope, text, **options)) == 1

    async def save_step(
        self,
        scope: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        *,
        id: str | None = None,
    ) -> bool:
        """Save a step's inputs and outputs as one entry of kind ``"step"`` (its data holds
        both; its text shows both as JSON)."""
        text = f"input: {_json(inputs)}\noutput: {_json(outputs)}"
        data = {"inputs": dict(inputs), "outputs": dict(outputs)}
        return await self.save(scope, text, kind="step", data=data, id=id)

    @abstractmethod
    async def load(self, scope: str, *, query: str | None = None) -> Recalled:
        """What this memory gives a step for ``scope`` (``query``: what it is about, for
        recall by similarity)."""

    async def clear(self, scope: str) -> int:
        """Forget everything under ``scope``; how many entries were deleted."""
        return await self.store.delete(scope)

    async def _add(self, entry: Entry) -> int:
        added = await self._store(entry)
        await self._prune(entry.scope)
        await self.retention.apply(self.store, entry.scope)
        return added

    async def _store(self, entry: Entry) -> int:
        """Put ``entry`` into the store (with its vector, for recall); how many were new."""
        return await self.store.add([entry])

    async def _prune(self, scope: str) -> None:  # noqa: B027  (most kinds prune; a buffer doesn't)
        """Drop what the kind no longer keeps (nothing, by default)."""


class BufferMemory(Memory):
    """Everything saved under the scope, oldest first."""

    async def load(self, scope: str, *, query: str | None = None) -> Recalled:
        return Recalled(scope, tuple(await self.store.entries(scope)))


class WindowMemory(Memory):
    """The last ``k`` entries of the scope; older ones are deleted as new ones come."""

    def __init__(
        self, k: int, store: Store | None = None, *, retention: Retention | None = None
    ) -> None:
        if k < 1:
            raise ValueError(f"WindowMemory: k must be at least 1, got {k}")
        super().__init__(store, retention=retention)
        self.k = k

    async def load(self, scope: str, *, query: str | None = None) -> Recalled:
        return Recalled(scope, tuple(await self.store.entries(scope, last=self.k)))

    async def _prune(self, scope: str) -> None:
        await self.store.delete(scope, keep_last=self.k)


class TokenBufferMemory(Memory):
    """The newest entries of the scope whose texts together fit ``max_tokens``; older ones
    are deleted as new ones come. The newest entry stays even when it alone is longer.

    Args:
        max_tokens: The budget.
        count: Tokens in a text: a tokenizer's count, or :func:`estimate_tokens`.
    """

    def __init__(
        self,
        max_tokens: int,
        store: Store | None = None,
        *,
        count: TokenCounter = estimate_tokens,
        retention: Retention | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"TokenBufferMemory: max_tokens must be at least 1, got {max_tokens}")
        super().__init__(store, retention=retention)
        self.max_tokens = max_tokens
        self.count = count

    async def load(self, scope: str, *, query: str | None = None) -> Recalled:
        entries = await self.store.entries(scope)
        return Recalled(scope, tuple(entries[len(entries) - self._fitting(entries) :]))

    async def _prune(self, scope: str) -> None:
        await self.store.delete(scope, keep_last=self._fitting(await self.store.entries(scope)))

    def _fitting(self, entries: Sequence[Entry]) -> int:
        """How many of the newest ``entries`` fit the budget (at least one, if any)."""
        used = kept = 0
        for entry in reversed(entries):
            used += self.count(entry.text)
            if used > self.max_tokens and kept:
                break
            kept += 1
        return kept


class SummaryMemory(Memory):
    """A running summary and the newest entries: once the entries not yet summarized pass
    ``max_tokens``, the older half of them are folded into the summary (by a chat model, or
    any ``summarize(previous, entries)`` coroutine function) and deleted.

    The summary is an entry of kind ``"summary"``; the new one is saved before the entries it
    covers are deleted, so a crash in between loses nothing (the next fold covers them again).

    Args:
        summarizer: A chat model (the ``local`` provider runs offline) or a coroutine function.
        max_tokens: Tokens of unsummarized entries that trigger a fold.
        count: As for :class:`TokenBufferMemory`.
    """

    INSTRUCTIONS = (
        "Update the running summary with the new notes. Keep every fact a later decision may"
        " need (names, amounts, outcomes, reasons); drop pleasantries. Answer with the summary"
        " only, in at most {words} words."
    )

    def __init__(
        self,
        summarizer: ChatModel | Summarizer,
        max_tokens: int,
        store: Store | None = None,
        *,
        count: TokenCounter = estimate_tokens,
        retention: Retention | None = None,
    ) -> None:
        if max_tokens < 2:
            raise ValueError(f"SummaryMemory: max_tokens must be at least 2, got {max_tokens}")
        from ..llms import ChatModel

        super().__init__(store, retention=retention)
        self.summarize = (
            self._by_model(summarizer) if isinstance(summarizer, ChatModel) else summarizer
        )
        self.max_tokens = max_tokens
        self.count = count

    async def load(self, scope: str, *, query: str | None = None) -> Recalled:
        summary, recent = _split(await self.store.entries(scope))
        return Recalled(scope, tuple(recent), summary=summary.text if summary else None)

    async def _prune(self, scope: str) -> None:
        summary, recent = _split(await self.store.entries(scope))
        if sum(self.count(entry.text) for entry in recent) <= self.max_tokens:
            return
        folded = recent[: max(1, len(recent) // 2)]
        text = await self.summarize(summary.text if summary else None, folded)
        if not text.strip():
            raise InputError("a summary", ["the summarizer answered nothing"])
        last = folded[-1]
        # Its id names what it covers: a retried fold of the same entries saves nothing new.
        fresh = Entry(scope, text.strip(), kind="summary", id=f"summary:{last.id}")
        await self.store.add([fresh])
        # The newest: the entries not folded, then the new summary; older ones go.
        await self.store.delete(scope, keep_last=len(recent) - len(folded) + 1)

    def _by_model(self, model: ChatModel) -> Summarizer:
        from ..llms import HumanMessage, RulesModel, SystemMessage

        if isinstance(model, RulesModel):
            raise ValueError(
                "SummaryMemory: a rules table cannot write a summary; use a chat model (the"
                " local provider runs offline) or a coroutine function summarize(previous,"
                " entries)"
            )

        async def summarize(previous: str | None, entries: Sequence[Entry]) -> str:
            words = max(20, self.max_tokens // 2)
            notes = "\n".join(f"- {entry.text}" for entry in entries)
            prompt = f"Summary so far: {previous or '(none)'}\n\nNew notes:\n{notes}"
            system = self.INSTRUCTIONS.format(words=words)
            answer = await model.agenerate([SystemMessage(system), HumanMessage(prompt)])
            return str(answer.content)

        return summarize


class VectorMemory(Memory):
    """Recall by meaning: each saved text is embedded; a load with a ``query`` gives the ``k``
    entries most similar to it, most similar first, among those matching the filters.

    Args:
        embedder: Turns texts into vectors (:class:`~belugaflow.memory.LocalEmbedder` runs
            offline).
        store: Where entries and vectors live (one embedder per store).
        k: How many entries a load gives.
    """

    def __init__(
        self,
        embedder: Embedder,
        store: Store | None = None,
        *,
        k: int = 5,
        retention: Retention | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"VectorMemory: k must be at least 1, got {k}")
        super().__init__(store, retention=retention)
        self.embedder = embedder
        self.k = k

    async def load(
        self,
        scope: str,
        *,
        query: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> Recalled:
        """The ``k`` entries of ``scope`` most similar to ``query`` (filtered by ``kind``,
        creation time ``since <= created < until`` and ``where``: equal values in their
        data); without a query, the newest ``k``."""
        if query is None:
            return Recalled(scope, tuple(await self.store.entries(scope, kind=kind, last=self.k)))
        [vector] = await self.embedder.embed([query])
        hits = await self.store.search(
            vector, k=self.k, scope=scope, kind=kind, since=since, until=until, where=where
        )
        return Recalled(scope, tuple(h.entry for h in hits), tuple(h.score for h in hits))

    async def _store(self, entry: Entry) -> int:
        vectors = await self.embedder.embed([entry.text])
        return await self.store.add([entry], vectors)


def _split(entries: Sequence[Entry]) -> tuple[Entry | None, list[Entry]]:
    """The newest summary, and the other entries (oldest first)."""
    summaries = [entry for entry in entries if entry.kind == "summary"]
    return (summaries[-1] if summaries else None), [e for e in entries if e.kind != "summary"]


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
