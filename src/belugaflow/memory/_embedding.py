"""What every embedder checks and does to its vectors, whatever makes them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._errors import InputError
from ._contract import Vectors

__all__ = ["checked_texts", "no_vectors", "unit_rows"]


def checked_texts(texts: Sequence[str], where: str) -> list[str]:
    """``texts`` as a list, or an :class:`~belugaflow.InputError` naming each text that is not
    a str. A bare str is refused too: it is a sequence of one-letter texts, never what the
    caller meant."""
    if isinstance(texts, str | bytes):
        raise InputError(where, [f"texts must be a list of str, got one {type(texts).__name__}"])
    batch = list(texts)
    problems = [
        f"texts[{index}] is {type(text).__name__}, not str"
        for index, text in enumerate(batch)
        if not isinstance(text, str)
    ]
    if problems:
        raise InputError(where, problems)
    return batch


def no_vectors(dimension: int) -> Vectors:
    """The answer to an empty list of texts: shape ``(0, dimension)``."""
    return np.zeros((0, dimension), dtype=np.float32)


def unit_rows(vectors: Vectors) -> Vectors:
    """``vectors`` with each row scaled to length 1 (float32, C-contiguous).

    Raises:
        ValueError: A row is all zeros (or not finite): it has no direction to keep.
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    bad = np.flatnonzero(~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0)))
    if bad.size:
        raise ValueError(
            f"vector {int(bad[0])} has no direction (length {float(norms[bad[0], 0])})"
        )
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)
