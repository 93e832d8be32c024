"""The store contract, one suite run on every store (in process, SQLite, Postgres).

Search is checked against an exact numpy cosine scan: random vectors, a hand-made case, every
filter, and a hypothesis property (top-k scores equal the exact top-k, ties included).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from belugaflow import ConfigError, InputError
from belugaflow.memory import (
    DimensionError,
    Entry,
    InProcessStore,
    PostgresStore,
    SQLiteStore,
    Store,
    StoreUnavailableError,
)

from .conftest import Backend

Array = npt.NDArray[np.float32]


def unit(rows: Array) -> Array:
    """Rows scaled to length 1."""
    scaled: Array = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return scaled


def random_vectors(n: int, dimension: int, seed: int) -> Array:
    """``n`` random unit vectors."""
    return unit(np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32))


def exact(vectors: Array, ids: list[str], query: Array, k: int) -> list[str]:
    """The ids of the ``k`` rows most similar to ``query``, by an exact numpy scan."""
    scores = unit(vectors) @ unit(query)
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def notes(scope: str, n: int, *, start: float = 1000.0, **data: object) -> list[Entry]:
    """``n`` entries of one scope created one second apart, ids ``{scope}/{i}``."""
    return [
        Entry(scope=scope, text=f"note {i}", id=f"{scope}/{i}", created=start + i, data=data)
        for i in range(n)
    ]


async def test_every_store_is_a_store(store: Store) -> None:
    """Each backend satisfies the runtime-checkable Store protocol."""
    assert isinstance(store, Store)


async def test_entries_come_back_oldest_first(store: Store) -> None:
    """entries() orders by created, then by order of saving; last= keeps the newest, still
    oldest first; kind= filters; an unknown scope is empty."""
    late = Entry(scope="s", text="late", id="late", created=30.0)
    early = Entry(scope="s", text="early", id="early", created=10.0, kind="order")
    tie_a = Entry(scope="s", text="tie a", id="tie-a", created=20.0)
    tie_b = Entry(scope="s", text="tie b", id="tie-b", created=20.0, kind="order")
    other = Entry(scope="t", text="other", id="other", created=0.0)
    assert await store.add([late, early, tie_a]) == 3
    assert await store.add([tie_b, other]) == 2

    assert await store.entries("s") == [early, tie_a, tie_b, late]
    assert await store.entries("s", last=2) == [tie_b, late]
    assert await store.entries("s", last=10) == [early, tie_a, tie_b, late]
    assert await store.entries("s", last=0) == []
    assert await store.entries("s", kind="order") == [early, tie_b]
    assert await store.entries("s", kind="order", last=1) == [tie_b]
    assert await store.entries("nobody") == []


async def test_entries_keep_their_data(store: Store) -> None:
    """text, kind, data (nested JSON, unicode) and created come back as saved."""
    entry = Entry(
        scope="s",
        text="Grüße ✓",
        kind="order",
        data={"tier": "gold", "amount": 12.5, "items": [1, {"sku": "a"}], "ok": True, "x": None},
        created=1234.5678,
    )
    await store.add([entry])
    assert await store.entries("s") == [entry]


async def test_add_is_idempotent(store: Store) -> None:
    """Ids already saved are skipped and not counted, within a batch too; the first is kept."""
    first = notes("s", 3)
    assert await store.add(first) == 3
    again = [*first[1:], Entry(scope="s", text="new", id="s/new", created=2000.0)]
    assert await store.add(again) == 1
    changed = Entry(scope="s", text="changed", id="s/0", created=5000.0)
    twice = Entry(scope="s", text="twice", id="s/twice", created=3000.0)
    assert await store.add([changed, twice, twice]) == 1
    saved = await store.entries("s")
    assert [e.id for e in saved] == ["s/0", "s/1", "s/2", "s/new", "s/twice"]
    assert saved[0].text == "note 0"
    assert await store.add([]) == 0


async def test_add_with_vectors_is_idempotent(store: Store) -> None:
    """A skipped id keeps its first vector: search still finds the first one."""
    vectors = random_vectors(3, 8, seed=1)
    entries = notes("s", 2)
    assert await store.add(entries, vectors[:2]) == 2
    assert await store.add(entries[:1], vectors[2:3]) == 0
    hits = await store.search(vectors[0], k=1)
    assert hits[0].entry.id == "s/0"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert await store.search(vectors[2], k=2) != []


async def test_search_ranks_like_an_exact_scan(store: Store) -> None:
    """300 random vectors of 32 dimensions: every query's top 10, in order, and its scores
    are the exact numpy scan's."""
    vectors = random_vectors(300, 32, seed=2)
    entries = [Entry(scope=f"s{i % 3}", text=str(i), id=str(i)) for i in range(300)]
    assert await store.add(entries[:150], vectors[:150]) == 150
    assert await store.add(entries[150:], vectors[150:]) == 150
    ids = [e.id for e in entries]
    for query in random_vectors(20, 32, seed=3):
        hits = await store.search(query, k=10)
        assert [h.entry.id for h in hits] == exact(vectors, ids, query, 10)
        expected = np.sort(vectors @ query)[::-1][:10]
        assert [h.score for h in hits] == pytest.approx(expected.tolist(), abs=1e-5)


async def test_search_hand_made_case(store: Store) -> None:
    """Cosine, not dot product: length does not matter, direction does; the best comes
    first, the opposite last, with scores 1, 0.8, 0, -1."""
    vectors = np.array(
        [[0, 1, 0], [4, 3, 0], [-2, 0, 0], [10, 0, 0]], dtype=np.float32
    )  # 0.8 = cos of (4, 3) to (1, 0)
    entries = [Entry(scope="s", text=name, id=name) for name in ("up", "mostly", "back", "same")]
    await store.add(entries, vectors)
    hits = await store.search(np.array([1, 0, 0], dtype=np.float32), k=4)
    assert [h.entry.id for h in hits] == ["same", "mostly", "up", "back"]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.8, 0.0, -1.0], abs=1e-6)
    two = await store.search(np.array([[0, 2, 0]], dtype=np.float32), k=2)
    assert [h.entry.id for h in two] == ["up", "mostly"]


async def test_search_filters(store: Store) -> None:
    """scope, kind, since (inclusive), until (exclusive) and where each narrow the
    candidates, combined with AND, and the ranking among them stays exact."""
    vectors = random_vectors(60, 16, seed=4)
    entries = [
        Entry(
            scope=f"s{i % 2}",
            kind="order" if i % 3 == 0 else "note",
            text=str(i),
            id=str(i),
            created=100.0 + i,
            data={"tier": "gold" if i % 4 == 0 else "silver", "n": i % 5},
        )
        for i in range(60)
    ]
    await store.add(entries, vectors)
    query = random_vectors(1, 16, seed=5)[0]
    cases: list[tuple[dict[str, Any], Callable[[Entry], bool]]] = [
        ({"scope": "s1"}, lambda e: e.scope == "s1"),
        ({"kind": "order"}, lambda e: e.kind == "order"),
        ({"since": 110.0}, lambda e: e.created >= 110.0),
        ({"until": 110.0}, lambda e: e.created < 110.0),
        ({"since": 110.0, "until": 120.0}, lambda e: 110.0 <= e.created < 120.0),
        ({"where": {"tier": "gold"}}, lambda e: e.data["tier"] == "gold"),
        ({"where": {"tier": "gold", "n": 0}}, lambda e: e.data == {"tier": "gold", "n": 0}),
        (
            {"scope": "s0", "kind": "order", "since": 105.0, "where": {"tier": "silver"}},
            lambda e: e.scope == "s0" and e.kind == "order" and e.created >= 105.0
            and e.data["tier"] == "silver",
        ),
        ({"where": {"tier": "platinum"}}, lambda e: False),
        ({"scope": "nobody"}, lambda e: False),
    ]  # fmt: skip
    for filters, keep in cases:
        chosen = [i for i, e in enumerate(entries) if keep(e)]
        hits = await store.search(query, k=8, **filters)
        wanted = exact(vectors[chosen], [entries[i].id for i in chosen], query, 8)
        assert [h.entry.id for h in hits] == wanted, filters


async def test_where_is_json_equality(store: Store) -> None:
    """where= matches like JSON: 1 matches 1.0 but not true or "1"; None matches null but
    not a missing key; several keys must all match."""
    data: list[dict[str, Any]] = [
        {"v": 1},
        {"v": 1.0},
        {"v": True},
        {"v": "1"},
        {"v": None},
        {},
        {"v": 1, "w": "x"},
        {"v": [1]},
    ]
    entries = [Entry(scope="s", text=str(d), id=str(i), data=d) for i, d in enumerate(data)]
    await store.add(entries, random_vectors(len(data), 4, seed=6))
    query = np.ones(4, dtype=np.float32)

    async def found(where: dict[str, object]) -> set[str]:
        return {h.entry.id for h in await store.search(query, k=20, where=where)}

    assert await found({"v": 1}) == {"0", "1", "6"}
    assert await found({"v": 1.0}) == {"0", "1", "6"}
    assert await found({"v": True}) == {"2"}
    assert await found({"v": "1"}) == {"3"}
    assert await found({"v": None}) == {"4"}
    assert await found({"v": 1, "w": "x"}) == {"6"}
    assert await found({"w": "y"}) == set()


async def test_search_skips_entries_without_vectors(store: Store) -> None:
    """Entries saved without vectors are listed but never found; an empty store finds
    nothing."""
    query = np.array([1, 0], dtype=np.float32)
    assert await store.search(query, k=3) == []
    await store.add(notes("plain", 2))
    assert await store.search(query, k=3) == []
    await store.add(notes("vec", 1), np.array([[1, 1]], dtype=np.float32))
    hits = await store.search(query, k=3)
    assert [h.entry.id for h in hits] == ["vec/0"]
    assert len(await store.entries("plain")) == 2


async def test_delete_by_scope_and_prefix(store: Store) -> None:
    """delete() removes one scope exactly, or every scope with the prefix; entries and
    vectors both go, and the ids can be saved again."""
    for scope in ("run:1", "run:10", "run:2", "other"):
        await store.add(notes(scope, 3), random_vectors(3, 4, seed=len(scope)))
    assert await store.delete("run:1") == 3
    assert await store.scopes() == {"other": 3, "run:10": 3, "run:2": 3}
    assert await store.delete("run:", prefix=True) == 6
    assert await store.scopes() == {"other": 3}
    assert await store.delete("nobody") == 0
    assert await store.delete("run:", prefix=True) == 0
    hits = await store.search(np.ones(4, dtype=np.float32), k=20)
    assert {h.entry.scope for h in hits} == {"other"}

    vectors = random_vectors(3, 4, seed=7)
    assert await store.add(notes("run:1", 3), vectors) == 3
    again = await store.search(vectors[1], k=1, scope="run:1")
    assert again[0].entry.id == "run:1/1"


async def test_delete_before_and_keep_last(store: Store) -> None:
    """before= deletes what was created earlier; keep_last= spares each scope's newest;
    together, an entry goes only when both allow it."""
    for scope in ("a", "b", "c"):
        await store.add(notes(scope, 6, start=100.0))  # created 100..105
    assert await store.delete("a", before=103.0) == 3
    assert [e.id for e in await store.entries("a")] == ["a/3", "a/4", "a/5"]
    assert await store.delete("b", keep_last=2) == 4
    assert [e.id for e in await store.entries("b")] == ["b/4", "b/5"]
    # c: before 105 would take 5, keep_last=3 spares 3..5: together 0..2.
    assert await store.delete("c", before=105.0, keep_last=3) == 3
    assert [e.id for e in await store.entries("c")] == ["c/3", "c/4", "c/5"]
    assert await store.delete("c", keep_last=5) == 0


async def test_delete_keep_last_per_scope_under_a_prefix(store: Store) -> None:
    """With prefix=True, keep_last= applies to each scope, not to all of them together."""
    await store.add(notes("t:1", 4) + notes("t:2", 1) + notes("u", 4))
    assert await store.delete("t:", prefix=True, keep_last=2) == 2
    assert await store.scopes() == {"t:1": 2, "t:2": 1, "u": 4}


async def test_scopes_counts_entries(store: Store) -> None:
    """scopes() lists every scope (or those with a prefix) with its count."""
    assert await store.scopes() == {}
    await store.add(notes("tenant:a/run:1", 2) + notes("tenant:a/run:2", 1) + notes("x", 4))
    assert await store.scopes() == {"tenant:a/run:1": 2, "tenant:a/run:2": 1, "x": 4}
    assert await store.scopes("tenant:a/") == {"tenant:a/run:1": 2, "tenant:a/run:2": 1}
    assert await store.scopes("tenant:b") == {}
    assert list(await store.scopes()) == sorted(await store.scopes())


async def test_wrong_dimension_writes_nothing(store: Store) -> None:
    """The first vectors fix the dimension; a batch of another width is a DimensionError
    naming both widths, and none of its entries is saved; a query of another width too."""
    await store.add(notes("s", 2), random_vectors(2, 4, seed=8))
    batch = [Entry(scope="s", text="new", id="new"), Entry(scope="t", text="t", id="t")]
    with pytest.raises(DimensionError) as caught:
        await store.add(batch, random_vectors(2, 5, seed=9))
    assert (caught.value.expected, caught.value.got) == (4, 5)
    assert "5 dimensions; this store holds 4" in str(caught.value)
    assert await store.scopes() == {"s": 2}
    with pytest.raises(DimensionError):
        await store.search(np.ones(3, dtype=np.float32), k=1)
    assert await store.add(batch, random_vectors(2, 4, seed=10)) == 2


async def test_bad_input_writes_nothing(store: Store) -> None:
    """Vectors of the wrong count, a zero vector, data that is not JSON, a bad k or where
    are InputErrors that name the problem; nothing of the batch is saved."""
    entries = notes("s", 2)
    with pytest.raises(InputError, match=r"shape \(2, dimension\)"):
        await store.add(entries, random_vectors(3, 4, seed=11))
    with pytest.raises(InputError, match="zero or not finite"):
        await store.add(entries, np.zeros((2, 4), dtype=np.float32))
    bad = Entry(scope="s", text="bad", id="bad", data={"when": object()})
    with pytest.raises(InputError, match="entry 'bad': data is not JSON-able"):
        await store.add([*entries, bad])
    assert await store.scopes() == {}
    await store.add(entries, random_vectors(2, 4, seed=12))
    query = np.ones(4, dtype=np.float32)
    with pytest.raises(InputError, match="k must be"):
        await store.search(query, k=0)
    with pytest.raises(InputError, match=r"where\['tier'\] must be"):
        await store.search(query, k=1, where={"tier": ["gold"]})
    with pytest.raises(InputError, match="last must be"):
        await store.entries("s", last=-1)
    with pytest.raises(InputError, match="zero or not finite"):
        await store.search(np.zeros(4, dtype=np.float32), k=1)


async def test_saved_entries_survive_a_new_store_object(backend: Backend) -> None:
    """A second store object on the same file or schema sees what the first saved, and the
    recorded dimension and embedder: another is an error before anything is written."""
    if not backend.shared:
        pytest.skip("the in-process store has no second object on the same data")
    first = backend.open(embedder="model-a")
    vectors = random_vectors(3, 6, seed=13)
    await first.add(notes("s", 3), vectors)
    await first.close()

    second = backend.open(embedder="model-a")
    assert [e.id for e in await second.entries("s")] == ["s/0", "s/1", "s/2"]
    assert (await second.search(vectors[2], k=1))[0].entry.id == "s/2"
    with pytest.raises(DimensionError):
        await second.add(notes("t", 1), random_vectors(1, 7, seed=14))
    with pytest.raises(DimensionError):
        await backend.open(dimension=7).scopes()
    with pytest.raises(ConfigError, match="embedder 'model-a', not 'model-b'"):
        await backend.open(embedder="model-b").scopes()
    assert await second.scopes() == {"s": 3}


async def test_dimension_given_up_front(backend: Backend) -> None:
    """A store built with dimension= refuses other widths before its first vector."""
    store = backend.open(dimension=3)
    with pytest.raises(DimensionError):
        await store.add(notes("s", 1), random_vectors(1, 4, seed=15))
    assert await store.add(notes("s", 1), random_vectors(1, 3, seed=16)) == 1


async def test_concurrent_adds_from_two_store_objects(backend: Backend) -> None:
    """Two store objects on one SQLite file (or Postgres schema) adding overlapping batches
    at once: every entry is saved once, and the counts they return add up."""
    if not backend.shared:
        pytest.skip("the in-process store has no second object on the same data")
    one, two = backend.open(), backend.open()
    vectors = random_vectors(300, 8, seed=17)
    entries = [Entry(scope="s", text=str(i), id=str(i), created=float(i)) for i in range(300)]

    async def add(store: Store, start: int, stop: int, step: int = 1) -> int:
        """Batches of 20 from start to stop, each in the order ``step`` gives (-1: reversed,
        so two writers meet the same ids in opposite orders)."""
        counts = [
            await store.add(entries[i : i + 20][::step], vectors[i : i + 20][::step])
            for i in range(start, stop, 20)
        ]
        return sum(counts)

    counts = await asyncio.gather(
        add(one, 0, 200), add(two, 100, 300, step=-1), add(one, 60, 160, step=-1)
    )
    assert sum(counts) == 300
    assert await two.scopes() == {"s": 300}
    assert [e.id for e in await one.entries("s")] == [str(i) for i in range(300)]
    query = random_vectors(1, 8, seed=18)[0]
    hits = await two.search(query, k=5)
    assert [h.entry.id for h in hits] == exact(vectors, [e.id for e in entries], query, 5)


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_postgres_down_is_store_unavailable() -> None:
    """A Postgres that refuses connections: StoreUnavailableError naming host and port,
    never the password; the store works once something listens (not tested: nothing does)."""
    port = closed_port()
    store = PostgresStore(f"postgresql://bob:pa55-w0rd@127.0.0.1:{port}/memory")
    for call in (store.scopes(), store.add(notes("s", 1)), store.entries("s")):
        with pytest.raises(StoreUnavailableError) as caught:
            await call
        message = str(caught.value)
        assert f"127.0.0.1:{port}/memory" in message
        assert "pa55-w0rd" not in message and "pa55-w0rd" not in repr(store)
    assert caught.value.retryable
    await store.close()


async def test_sqlite_unopenable_file_is_store_unavailable(tmp_path: Path) -> None:
    """A path under a regular file, or a file that is not a database: StoreUnavailableError
    naming the path."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = SQLiteStore(blocker / "memory.db")
    with pytest.raises(StoreUnavailableError, match=str(blocker / "memory.db")):
        await store.add(notes("s", 1))
    await store.close()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file, just bytes" * 100)
    store = SQLiteStore(garbage)
    with pytest.raises(StoreUnavailableError, match="not a database"):
        await store.scopes()
    await store.close()


async def test_missing_drivers_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without psycopg or sqlite-vec the stores raise ImportError saying what to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"pip install 'belugaflow\[memory\]'"):
        PostgresStore("postgresql://localhost/db")
    monkeypatch.setitem(sys.modules, "sqlite_vec", None)
    store = SQLiteStore(tmp_path / "memory.db")
    with pytest.raises(ImportError, match=r"needs sqlite-vec: pip install 'belugaflow\[memory\]'"):
        await store.scopes()
    await store.close()


def test_bad_postgres_settings_are_config_errors() -> None:
    """An unparsable DSN or a schema that is not an identifier fails at construction."""
    with pytest.raises(ConfigError, match="cannot be parsed"):
        PostgresStore("host=x password=secret =oops")
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        PostgresStore("postgresql://localhost/db", schema="a;drop")


def test_in_process_store_repr() -> None:
    """The in-process store's repr shows its size and dimension."""
    assert repr(InProcessStore(dimension=3)) == "InProcessStore(entries=0, dimension=3)"


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(st.lists(st.integers(-3, 3), min_size=6, max_size=6), min_size=1, max_size=40),
    query=st.lists(st.integers(-3, 3), min_size=6, max_size=6),
    k=st.integers(1, 12),
)
async def test_search_top_k_is_the_exact_top_k(
    store: Store, rows: list[list[int]], query: list[int], k: int
) -> None:
    """For any vectors (small integers: many ties and duplicates), search's top-k scores
    are numpy's exact top-k scores, and each hit's score is its own vector's cosine."""
    vectors = np.array(rows, dtype=np.float32)
    vectors[np.linalg.norm(vectors, axis=1) == 0, 0] = 1.0
    q = np.array(query, dtype=np.float32)
    q[0] += 1.0 if not q.any() else 0.0
    scope = uuid.uuid4().hex  # one store serves every example: each its own scope
    entries = [Entry(scope=scope, text=str(i), id=f"{scope}/{i}") for i in range(len(rows))]
    await store.add(entries, vectors)
    hits = await store.search(q, k=k, scope=scope)
    scores = unit(vectors) @ unit(q)
    assert len(hits) == min(k, len(rows))
    assert len({h.entry.id for h in hits}) == len(hits)
    assert [h.score for h in hits] == pytest.approx(np.sort(scores)[::-1][:k].tolist(), abs=1e-5)
    for hit in hits:
        assert hit.score == pytest.approx(scores[int(hit.entry.text)], abs=1e-5)
