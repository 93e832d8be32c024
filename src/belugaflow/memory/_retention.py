"""Retention: how long a scope keeps its entries (``ttl``) and how many (``max_entries``).

Every memory kind applies its :class:`Retention` to the scope it saves to, on every save, so a
scope that is written to stays within it. A scope nobody writes to any more keeps what it had
until :func:`prune_all` runs over the whole store (``belugaflow memory prune``, from a periodic
job).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from ._contract import Store

__all__ = ["Retention", "prune_all"]


@dataclass(frozen=True, slots=True, init=False)
class Retention:
    """What a scope keeps: entries younger than ``ttl``, and of those at most the newest
    ``max_entries``. ``None`` means no limit of that kind.

    Retention is a cap over the whole scope, whatever kind wrote its entries: a summary
    memory's running summary is an entry like any other (it is always among the newest).

    Args:
        ttl: How long an entry is kept after it was created: a ``timedelta`` or seconds.
        max_entries: Most entries one scope keeps.

    Raises:
        ValueError: ``ttl`` not above zero, or ``max_entries`` below 1.
    """

    ttl: timedelta | None = None
    max_entries: int | None = None

    def __init__(
        self, ttl: timedelta | float | None = None, max_entries: int | None = None
    ) -> None:
        if ttl is not None and not isinstance(ttl, timedelta):
            if isinstance(ttl, bool) or not isinstance(ttl, int | float):
                raise ValueError(f"Retention: ttl must be a timedelta or seconds, got {ttl!r}")
            ttl = timedelta(seconds=ttl)
        if ttl is not None and ttl <= timedelta(0):
            raise ValueError(f"Retention: ttl must be greater than zero, got {ttl}")
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ValueError(f"Retention: max_entries must be an integer >= 1, got {max_entries!r}")
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "max_entries", max_entries)

    def __bool__(self) -> bool:
        """Whether it limits anything."""
        return self.ttl is not None or self.max_entries is not None

    async def apply(
        self, store: Store, scope: str, *, prefix: bool = False, now: float | None = None
    ) -> int:
        """Delete what ``scope`` (every scope starting with it, when ``prefix``) no longer
        keeps; return how many entries were deleted.

        Args:
            now: The time ``ttl`` counts back from, in Unix seconds. Default: now.
        """
        deleted = 0
        # Two deletes, not one with both conditions: the store's delete() takes an entry
        # only when *every* condition holds, and retention drops it when *either* does.
        if self.ttl is not None:
            cutoff = (time.time() if now is None else now) - self.ttl.total_seconds()
            deleted += await store.delete(scope, prefix=prefix, before=cutoff)
        if self.max_entries is not None:
            deleted += await store.delete(scope, prefix=prefix, keep_last=self.max_entries)
        return deleted


async def prune_all(
    store: Store, retention: Retention, *, prefix: str = "", now: float | None = None
) -> int:
    """Apply ``retention`` to every scope of ``store`` (those starting with ``prefix``),
    ``max_entries`` to each scope on its own; return how many entries were deleted.

    For a periodic job: a scope that is no longer saved to is otherwise never pruned.
    """
    return await retention.apply(store, prefix, prefix=True, now=now)
