"""What memory is made of: an :class:`Entry` saved under a scope, a :class:`Store` that keeps
entries (and their vectors, when there are any), and an :class:`Embedder` that turns text into
vectors. Every memory kind is built on these three; every store and embedder implements them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .._errors import BelugaflowError, InputError

__all__ = [
    "DimensionError",
    "Embedder",
    "Entry",
    "Hit",
    "ScopeNotFoundError",
    "Store",
    "StoreUnavailableError",
    "Vectors",
]

Vectors = npt.NDArray[np.float32]
"""Shape ``(n, dimension)``, float32, each row of unit length (cosine = dot product)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing remembered. ``id`` is the idempotency key: saving an id that is already
    saved keeps the first and adds nothing (a retried activity derives it from the run and
    the node, so it never saves twice)."""

    scope: str
    """Whose memory: a run id, a customer, a tenant, a conversation — the caller's choice."""
    text: str
    """What an embedder embeds and a prompt shows."""
    kind: str = "note"
    """What sort of entry (``"message"``, ``"order"``, ``"decision"``, …); recall filters on it."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able details kept beside the text (an outcome, a role, a tier…)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)
    """Unix seconds."""


class Hit(NamedTuple):
    """An entry that recall found, with its cosine similarity to the query (1 = same)."""

    entry: Entry
    score: float


@runtime_checkable
class Store(Protocol):
    """Where entries live. One interface for every backend (in process, SQLite, Postgres).

    Entries of one scope come back oldest first. Vectors are optional per entry, but a store
    holds one dimension: the first vector saved fixes it, and a vector of another width is a
    :class:`DimensionError` with nothing written. Every write is all-or-nothing."""

    async def add(self, entries: Sequence[Entry], vectors: Vectors | None = None) -> int:
        """Save ``entries`` (with ``vectors[i]`` for ``entries[i]`` when given) and return how
        many were new; ids already saved are skipped."""
        ...

    async def entries(
        self, scope: str, *, kind: str | None = None, last: int | None = None
    ) -> list[Entry]:
        """The scope's entries, oldest first (only the newest ``last`` when given)."""
        ...

    async def search(
        self,
        vector: Vectors,
        *,
        k: int,
        scope: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` entries with vectors most similar to ``vector`` (shape ``(dimension,)``),
        best first, among those matching every filter (``where``: equality on ``data`` keys)."""
        ...

    async def delete(
        self,
        scope: str,
        *,
        prefix: bool = False,
        before: float | None = None,
        keep_last: int | None = None,
    ) -> int:
        """Delete the scope's entries (every scope starting with ``scope`` when ``prefix``),
        only those created before ``before`` and/or all but the newest ``keep_last`` when
        given; return how many were deleted."""
        ...

    async def scopes(self, prefix: str = "") -> dict[str, int]:
        """Every scope (starting with ``prefix``) and how many entries it holds."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of unit length."""

    name: str
    """The model, e.g. ``"all-MiniLM-L6-v2"``: stores keep it so vectors of two models never mix."""
    dimension: int

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


class DimensionError(InputError):
    """A vector's width is not the store's (or the embedder's) dimension."""

    code = "embedding_dimension"

    def __init__(self, where: str, *, expected: int, got: int) -> None:
        super().__init__(where, [f"vectors have {got} dimensions; this store holds {expected}"])
        self.expected = expected
        self.got = got


class StoreUnavailableError(BelugaflowError):
    """The store cannot be reached (a file that can't be opened, a database that is down)."""

    code = "memory_store_unavailable"
    retryable = True


class ScopeNotFoundError(BelugaflowError, KeyError):
    """A scope that holds nothing was asked for where one was required (show, delete)."""

    code = "memory_scope_unknown"

    def __init__(self, scope: str) -> None:
        super().__init__(f"no memory under scope {scope!r}")
        self.scope = scope

    def __str__(self) -> str:
        return self.message
