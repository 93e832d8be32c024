"""Retention on every store (in process, SQLite, Postgres): each memory kind caps the scope it
saves to by age (``ttl``) and count (``max_entries``) on every save, and ``prune_all`` caps
every scope of a store at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest

from belugaflow.memory import (
    BufferMemory,
    Entry,
    LocalEmbedder,
    Memory,
    Retention,
    Store,
    SummaryMemory,
    TokenBufferMemory,
    VectorMemory,
    WindowMemory,
    prune_all,
)

HOUR = 3600.0


def old(scope: str, n: int, *, age: float = 2 * HOUR) -> list[Entry]:
    """``n`` entries of ``scope`` created ``age`` seconds ago (a second apart, oldest first)."""
    start = time.time() - age
    return [
        Entry(scope=scope, text=f"old {i}", id=f"{scope}/{age}/{i}", created=start + i)
        for i in range(n)
    ]


def texts(entries: Sequence[Entry]) -> list[str]:
    return [entry.text for entry in entries]


async def summarize(previous: str | None, entries: Sequence[Entry]) -> str:
    return " + ".join(filter(None, [previous, *texts(entries)]))


def kinds(local: LocalEmbedder) -> dict[str, Callable[[Store, Retention], Memory]]:
    """Every memory kind, with limits of its own far above what the tests save."""
    return {
        "buffer": lambda store, keep: BufferMemory(store, retention=keep),
        "window": lambda store, keep: WindowMemory(100, store, retention=keep),
        "token_buffer": lambda store, keep: TokenBufferMemory(10_000, store, retention=keep),
        "summary": lambda store, keep: SummaryMemory(summarize, 10_000, store, retention=keep),
        "vector": lambda store, keep: VectorMemory(local, store, retention=keep),
    }


@pytest.mark.parametrize("kind", ["buffer", "window", "token_buffer", "summary", "vector"])
async def test_every_kind_applies_retention_on_save(
    store: Store, local: LocalEmbedder, kind: str
) -> None:
    """Whatever the kind, a save leaves its scope with entries younger than ttl, at most
    max_entries of them, the newest; other scopes are left alone."""
    memory = kinds(local)[kind](store, Retention(ttl=timedelta(hours=1), max_entries=3))
    await store.add(old("c-1", 2) + old("c-2", 2))
    await memory.save("c-1", "new 0")
    assert texts(await store.entries("c-1")) == ["new 0"]  # the expired ones went
    for n in range(1, 5):
        await memory.save("c-1", f"new {n}")
    assert texts(await store.entries("c-1")) == ["new 2", "new 3", "new 4"]
    assert texts(await store.entries("c-2")) == ["old 0", "old 1"]  # not saved to: untouched


async def test_ttl_and_max_entries_each_delete_on_their_own(store: Store) -> None:
    """An entry goes when it is too old *or* past the count: either limit suffices."""
    await store.add(old("s", 3, age=10 * HOUR) + old("s", 1, age=HOUR / 2))
    keep = Retention(ttl=2 * HOUR, max_entries=10)  # the count spares all; the age does not
    assert await keep.apply(store, "s") == 3
    assert texts(await store.entries("s")) == ["old 0"]  # the one half an hour old
    await store.add(old("t", 4, age=HOUR / 2))
    assert await Retention(ttl=2 * HOUR, max_entries=1).apply(store, "t") == 3


async def test_retention_prunes_after_the_kinds_own_pruning(store: Store) -> None:
    """A window of 4 under max_entries 2 keeps 2: the tighter limit wins."""
    memory = WindowMemory(4, store, retention=Retention(max_entries=2))
    for n in range(6):
        await memory.save("chat", f"message {n}")
    assert texts((await memory.load("chat")).entries) == ["message 4", "message 5"]


async def test_prune_all_applies_retention_to_every_scope(store: Store) -> None:
    """prune_all() caps each scope on its own (max_entries per scope), expired entries go
    everywhere, and prefix= limits it to some scopes."""
    await store.add(old("acme:c-1", 5, age=HOUR / 2) + old("acme:c-2", 2, age=3 * HOUR))
    await store.add(old("globex:c-1", 5, age=HOUR / 2) + old("globex:c-2", 1, age=3 * HOUR))
    keep = Retention(ttl=timedelta(hours=1), max_entries=3)
    assert await prune_all(store, keep, prefix="acme:") == 4  # 2 expired + 2 over the count
    assert await store.scopes() == {"acme:c-1": 3, "globex:c-1": 5, "globex:c-2": 1}
    assert await prune_all(store, keep) == 3
    assert await store.scopes() == {"acme:c-1": 3, "globex:c-1": 3}
    assert texts(await store.entries("globex:c-1")) == ["old 2", "old 3", "old 4"]
    assert await prune_all(store, keep) == 0


async def test_no_retention_deletes_nothing(store: Store) -> None:
    """The default Retention() limits nothing: saves and prune_all keep everything."""
    assert not Retention() and Retention(max_entries=1)
    memory = BufferMemory(store)
    await store.add(old("s", 3, age=1000 * HOUR))
    await memory.save("s", "new")
    assert await prune_all(store, Retention()) == 0
    assert len(await store.entries("s")) == 4


async def test_now_sets_the_time_ttl_counts_back_from(store: Store) -> None:
    """apply(now=) and prune_all(now=) measure age from the time given."""
    await store.add(old("s", 3, age=HOUR / 2))
    keep = Retention(ttl=HOUR)
    assert await prune_all(store, keep) == 0
    assert await prune_all(store, keep, now=time.time() + HOUR) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 0}, "ttl must be greater than zero"),
        ({"ttl": timedelta(seconds=-1)}, "ttl must be greater than zero"),
        ({"ttl": "1h"}, "ttl must be a timedelta or seconds"),
        ({"max_entries": 0}, "max_entries must be an integer >= 1"),
        ({"max_entries": True}, "max_entries must be an integer >= 1"),
        ({"max_entries": 2.5}, "max_entries must be an integer >= 1"),
    ],
)
def test_retention_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Retention(**options)  # type: ignore[arg-type]


def test_retention_takes_seconds_or_a_timedelta() -> None:
    assert Retention(ttl=90) == Retention(ttl=timedelta(seconds=90))
    assert Retention(ttl=1.5).ttl == timedelta(seconds=1.5)
    assert repr(Retention(max_entries=5)) == "Retention(ttl=None, max_entries=5)"
