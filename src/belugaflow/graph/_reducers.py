"""State reducers: how writes to one key combine when several nodes may write it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN_REDUCERS", "Reducer", "SubgraphUpdate"]

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


def _append_delta(before: Any, after: Any) -> Any:
    if before is None:
        return after
    if isinstance(after, list) and after[: len(before)] == list(before):
        return after[len(before) :]
    raise ValueError("the list no longer starts with its old items")


def _add_delta(before: Any, after: Any) -> Any:
    return after if before is None else after - before


def _merge_delta(before: Any, after: Any) -> Any:
    if before is None:
        return after
    return {k: v for k, v in after.items() if k not in before or before[k] != v}


# What a sub-graph added to a key, so the parent's reducer applies it once, not twice.
_DELTAS: dict[Reducer, Callable[[Any, Any], Any]] = {
    append: _append_delta,
    add: _add_delta,
    merge: _merge_delta,
}


@dataclass(frozen=True, slots=True)
class SubgraphUpdate:
    """A sub-graph node's result: the state it started from and the state it ended with."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]

    def changes(self, reducers: Mapping[str, Reducer]) -> dict[str, Any]:
        """The update for the parent: changed keys, as deltas where the parent has a reducer.

        Raises:
            ValueError: a changed key has a custom reducer (no delta can be derived) or its
                new value does not extend the old one.
        """
        update = {}
        before = self.before
        for key, value in self.after.items():
            if key in before and before[key] is value:
                continue
            reducer = reducers.get(key)
            if reducer is None:
                update[key] = value
                continue
            delta = _DELTAS.get(reducer)
            if delta is None:
                raise ValueError(
                    f"the sub-graph changed {key!r}, whose custom reducer cannot be applied to"
                    " a whole new value; return that key from a node of the parent graph"
                )
            try:
                update[key] = delta(before.get(key), value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"the sub-graph's new value of {key!r}: {error}") from error
        return update
