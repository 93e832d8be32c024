"""State reducers: how writes to one key combine when several nodes may write it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BUILTIN_REDUCERS", "Reducer"]

Reducer = Callable[[Any, Any], Any]
"""``reducer(current, update) -> new``; ``current`` is None while the key is unset."""


def append(current: Any, update: Any) -> list[Any]:
    """Lists concatenate; any other update is appended as one item."""
    items = update if isinstance(update, list) else [update]
    return items if current is None else [*current, *items]


def merge(current: Any, update: Any) -> dict[Any, Any]:
    """Shallow dict merge; the update's keys win."""
    return dict(update) if current is None else {**current, **update}


def add(current: Any, update: Any) -> Any:
    """Numbers add up, starting from 0."""
    return update if current is None else current + update


BUILTIN_REDUCERS: dict[str, Reducer] = {"add": add, "append": append, "merge": merge}
