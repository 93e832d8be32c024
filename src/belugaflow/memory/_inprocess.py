"""The in-process store: dicts for entries, one numpy matrix for vectors, an exact cosine scan
for search. Nothing survives the process; it is the store for tests and notebooks, and the
exact baseline the other stores are measured against (``benchmarks/memory.py``).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from ._contract import Entry, Hit, Vectors
from ._stores_common import (
    Scalar,
    check_count,
    check_k,
    check_query,
    check_vectors,
    check_where,
    encode_data,
    json_equal,
)

__all__ = ["InProcessStore"]


class _Saved(NamedTuple):
    entry: Entry
    seq: int
    """Order of saving: breaks ties between entries created at the same instant."""
    row: int
    """Row of its vector in the matrix, -1 when it has none."""


class InProcessStore:
    """A :class:`~belugaflow.memory.Store` held in this process's memory.

    Search is exact: every candidate's cosine similarity is computed (one matrix-vector
    product) and the best ``k`` are returned, ties broken by the order of saving. ``since`` is
    inclusive and ``until`` exclusive (``since <= created < until``), as in every store.

    Args:
        dimension: Fix the vectors' width up front (otherwise the first vector saved fixes it).
    """

    def __init__(self, *, dimension: int | None = None) -> None:
        check_count("dimension", dimension, "InProcessStore()", least=1)
        self._dimension = dimension
        self._saved: dict[str, _Saved] = {}
        self._scopes: dict[str, list[tuple[float, int, str]]] = {}
        """Per scope, (created, seq, id) kept sorted: the order entries come back in."""
        self._matrix: npt.NDArray[np.float32] = np.empty((0, dimension or 0), np.float32)
        """Unit-length rows; capacity doubles as it fills (``_rows`` are in use)."""
        self._rows = 0
        self._row_ids: list[str] = []
        """The entry id of each matrix row."""
        self._alive: npt.NDArray[np.bool_] = np.empty(0, bool)
        """Whether each matrix row still belongs to a saved entry."""
        self._dead = 0
        self._seq = itertools.count()

    @property
    def dimension(self) -> int | None:
        """The vectors' width, ``None`` until the first vector is saved."""
        return self._dimension

    async def add(self, entries: Sequence[Entry], vectors: Vectors | None = None) -> int:
        """Save the entries not saved yet (by id) with their vectors; return how many."""
        array = check_vectors(
            entries, vectors, dimension=self._dimension, where="InProcessStore.add()"
        )
        if not entries:
            return 0
        # Everything that can fail is checked before anything changes: all or nothing.
        decoded = [json.loads(encode_data(entry, "InProcessStore.add()")) for entry in entries]
        new: list[int] = []
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.id not in self._saved and entry.id not in seen:
                new.append(i)
                seen.add(entry.id)
        rows = [-1] * len(new)
        if array is not None:
            self._dimension = array.shape[1]
            chosen = array[new]
            first = self._append_rows(chosen / np.linalg.norm(chosen, axis=1, keepdims=True))
            rows = list(range(first, first + len(new)))
        for i, row in zip(new, rows, strict=True):
            entry = dataclasses.replace(entries[i], data=decoded[i])
            seq = next(self._seq)
            self._saved[entry.id] = _Saved(entry, seq, row)
            if row >= 0:
                self._row_ids[row] = entry.id
            bisect.insort(self._scopes.setdefault(entry.scope, []), (entry.created, seq, entry.id))
        return len(new)

    async def entries(
        self, scope: str, *, kind: str | None = None, last: int | None = None
    ) -> list[Entry]:
        """The scope's entries, oldest first (only the newest ``last`` when given)."""
        check_count("last", last, "InProcessStore.entries()")
        found = [self._saved[id_].entry for _, _, id_ in self._scopes.get(scope, [])]
        if kind is not None:
            found = [entry for entry in found if entry.kind == kind]
        if last is not None:
            found = found[len(found) - last :] if last else []
        return found

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
        """The ``k`` entries most similar to ``vector`` among those matching every filter."""
        check_k(k, "InProcessStore.search()")
        equal = check_where(where, "InProcessStore.search()")
        if self._dimension is None:
            return []
        query = check_query(vector, dimension=self._dimension, where="InProcessStore.search()")
        query = query / np.linalg.norm(query)
        if scope is None and kind is None and since is None and until is None and not equal:
            rows = np.flatnonzero(self._alive[: self._rows]) if self._dead else None
        else:
            pool = (
                (self._saved[id_] for _, _, id_ in self._scopes.get(scope, []))
                if scope is not None
                else iter(self._saved.values())
            )
            rows = np.fromiter(
                (
                    saved.row
                    for saved in pool
                    if saved.row >= 0 and _matches(saved.entry, kind, since, until, equal)
                ),
                dtype=np.intp,
            )
        if rows is None:
            scores = self._matrix[: self._rows] @ query
            rows = np.arange(self._rows)
        else:
            scores = self._matrix[rows] @ query
        return self._best(scores, rows, k)

    async def delete(
        self,
        scope: str,
        *,
        prefix: bool = False,
        before: float | None = None,
        keep_last: int | None = None,
    ) -> int:
        """Delete the scope's entries that meet every condition given; return how many."""
        check_count("keep_last", keep_last, "InProcessStore.delete()")
        scopes = [s for s in self._scopes if s.startswith(scope)] if prefix else [scope]
        doomed: list[str] = []
        for name in scopes:
            order = self._scopes.get(name, [])
            # The newest keep_last are spared; of the rest, those created before `before`.
            older = order[: max(len(order) - keep_last, 0)] if keep_last is not None else order
            doomed += [id_ for created, _, id_ in older if before is None or created < before]
        for id_ in doomed:
            saved = self._saved.pop(id_)
            order = self._scopes[saved.entry.scope]
            order.remove((saved.entry.created, saved.seq, id_))
            if not order:
                del self._scopes[saved.entry.scope]
            if saved.row >= 0:
                self._alive[saved.row] = False
                self._dead += 1
        if self._dead > self._rows // 2:
            self._compact()
        return len(doomed)

    async def scopes(self, prefix: str = "") -> dict[str, int]:
        """Every scope starting with ``prefix`` and how many entries it holds, by name."""
        return {
            name: len(order)
            for name, order in sorted(self._scopes.items())
            if name.startswith(prefix)
        }

    async def close(self) -> None:
        """Nothing to release; the entries stay until the store is dropped."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"InProcessStore(entries={len(self._saved)}, dimension={self._dimension})"

    def _append_rows(self, unit: npt.NDArray[np.float32]) -> int:
        """Append rows to the matrix (growing it by doubling); return the first new row."""
        first, count = self._rows, unit.shape[0]
        if first + count > self._matrix.shape[0] or self._matrix.shape[1] != unit.shape[1]:
            size = max(first + count, 2 * self._matrix.shape[0], 64)
            matrix = np.empty((size, unit.shape[1]), np.float32)
            alive = np.zeros(size, bool)
            if first:  # (the width never changes once rows exist)
                matrix[:first] = self._matrix[:first]
                alive[:first] = self._alive[:first]
            self._matrix, self._alive = matrix, alive
        self._matrix[first : first + count] = unit
        self._alive[first : first + count] = True
        self._row_ids += [""] * count
        self._rows = first + count
        return first

    def _compact(self) -> None:
        """Drop deleted rows from the matrix once they are the majority."""
        keep = np.flatnonzero(self._alive[: self._rows])
        self._matrix = self._matrix[keep]
        self._alive = np.ones(len(keep), bool)
        self._row_ids = [self._row_ids[row] for row in keep]
        self._rows, self._dead = len(keep), 0
        for row, id_ in enumerate(self._row_ids):
            self._saved[id_] = self._saved[id_]._replace(row=row)

    def _best(
        self, scores: npt.NDArray[np.float32], rows: npt.NDArray[np.intp], k: int
    ) -> list[Hit]:
        """The best ``k`` of ``scores`` (for matrix ``rows``), ties by order of saving."""
        chosen = np.arange(scores.size)
        if scores.size > k:
            # Everything scoring at least the k-th best, so a tie at the cut is settled by
            # order of saving, as the SQL stores' ORDER BY does.
            kth = np.partition(scores, scores.size - k)[scores.size - k]
            chosen = np.flatnonzero(scores >= kth)
        hits = [(self._saved[self._row_ids[int(rows[i])]], float(scores[i])) for i in chosen]
        hits.sort(key=lambda hit: (-hit[1], hit[0].seq))
        return [Hit(saved.entry, score) for saved, score in hits[:k]]


def _matches(
    entry: Entry,
    kind: str | None,
    since: float | None,
    until: float | None,
    equal: dict[str, Scalar],
) -> bool:
    return (
        (kind is None or entry.kind == kind)
        and (since is None or entry.created >= since)
        and (until is None or entry.created < until)
        and all(key in entry.data and json_equal(entry.data[key], v) for key, v in equal.items())
    )
