"""What every store checks the same way before it touches its data, so the three backends
refuse the same input with the same error and nothing is half-written.

The ``where`` filter of :meth:`Store.search` is JSON equality on top-level ``data`` keys: a
string matches an equal string, a number an equal number (``1`` matches ``1.0``), a bool only a
bool, ``None`` only a JSON ``null``, and a key that is absent matches nothing. Postgres gives
exactly this with ``jsonb`` containment; SQLite and the in-process store spell it out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import InputError
from ._contract import DimensionError, Entry, Vectors

__all__ = [
    "MAX_K",
    "Scalar",
    "check_count",
    "check_k",
    "check_query",
    "check_vectors",
    "check_where",
    "encode_data",
    "json_equal",
]

Scalar = str | int | float | bool | None
"""A value ``where`` can compare: JSON scalars only."""

MAX_K = 4096
"""The largest ``k`` a search takes (sqlite-vec's limit; kept for every store alike)."""


def encode_data(entry: Entry, where: str) -> str:
    """``entry.data`` as JSON text, or an :class:`InputError` naming the entry."""
    try:
        return json.dumps(
            dict(entry.data), allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )
    except (TypeError, ValueError) as error:
        raise InputError(where, [f"entry {entry.id!r}: data is not JSON-able ({error})"]) from None


def check_vectors(
    entries: Sequence[Entry], vectors: Vectors | None, *, dimension: int | None, where: str
) -> Vectors | None:
    """``vectors`` as a C-contiguous float32 ``(len(entries), d)`` array, checked against the
    store's ``dimension`` (``None`` while no vector is saved)."""
    if vectors is None:
        return None
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(entries):
        raise InputError(
            where,
            [f"vectors must have shape ({len(entries)}, dimension); got {tuple(array.shape)}"],
        )
    if dimension is not None and array.shape[1] != dimension:
        raise DimensionError(where, expected=dimension, got=int(array.shape[1]))
    norms = np.linalg.norm(array, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        ids = ", ".join(repr(entries[i].id) for i in bad[:5])
        raise InputError(where, [f"vectors of entries {ids} are zero or not finite"])
    return array


def check_query(vector: Vectors, *, dimension: int, where: str) -> Vectors:
    """A search vector as float32 of shape ``(dimension,)`` (``(1, dimension)`` is accepted)."""
    array = np.ascontiguousarray(vector, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise InputError(where, [f"a query vector has shape (dimension,); got {array.shape}"])
    if array.shape[0] != dimension:
        raise DimensionError(where, expected=dimension, got=int(array.shape[0]))
    norm = float(np.linalg.norm(array))
    if not math.isfinite(norm) or norm == 0:
        raise InputError(where, ["the query vector is zero or not finite"])
    return array


def check_count(name: str, value: int | None, where: str, *, least: int = 0) -> None:
    """``k``, ``last`` and ``keep_last`` are whole numbers of at least ``least``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InputError(where, [f"{name} must be an integer >= {least}; got {value!r}"])


def check_k(k: int, where: str) -> None:
    """A search's ``k``: from 1 to :data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InputError(where, [f"k must be an integer from 1 to {MAX_K}; got {k!r}"])


def check_where(where_: Mapping[str, Any] | None, where: str) -> dict[str, Scalar]:
    """The ``where`` filter, checked: string keys without ``"`` or ``\\`` (a SQLite JSON path
    cannot quote them), JSON scalar values, finite numbers."""
    if not where_:
        return {}
    problems = []
    for key, value in where_.items():
        if not isinstance(key, str) or '"' in key or "\\" in key:
            problems.append(f"where key {key!r} must be a string without '\"' or '\\'")
        elif value is not None and not isinstance(value, str | int | float | bool):
            problems.append(f"where[{key!r}] must be a str, number, bool or None; got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"where[{key!r}] must be a finite number; got {value!r}")
    if problems:
        raise InputError(where, problems)
    return dict(where_)


def json_equal(value: Any, wanted: Scalar) -> bool:
    """Whether ``value`` (from JSON) equals ``wanted`` in JSON terms (see the module doc)."""
    if wanted is None:
        return value is None
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(wanted, bool) and isinstance(value, bool) and value == wanted
    if isinstance(wanted, int | float):
        return isinstance(value, int | float) and value == wanted
    return isinstance(value, str) and value == wanted
