"""W13 ``memory_recall``, the stores' part: 10,000 entries of 384 dimensions in each store
(in process, SQLite, Postgres), then 200 top-5 queries, against an exact numpy scan of the same
vectors in the same run.

Per store: query latency p50/p90 (unfiltered, and filtered by scope and a ``data`` key), the
insert rate (batches of 100, one transaction each, durable settings), and recall@5 — the
overlap of each query's top 5 with the exact scan's, averaged. Random unit vectors: they time
the store, not an embedder (that is ``benchmarks/embedders.py``). Postgres is the ``pgserver``
one (a Unix socket, default settings), started in a temp dir and deleted afterwards.

Targets from the issue: recall@5 equal to the exact scan (1.0) on SQLite and Postgres, top-5
≤ 5 ms p50 on SQLite.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from belugaflow.memory import (
    Entry,
    InProcessStore,
    PostgresStore,
    SQLiteStore,
    Store,
    embedded_postgres,
)

from ._harness import quantiles

__all__ = ["w13_stores"]

Record = dict[str, Any]
Array = npt.NDArray[np.float32]

DIMENSION = 384
K = 5
BATCH = 100
SCOPES = 50
SQLITE_TARGET_MS = 5.0
MS = 1e6


def w13_stores(quick: bool) -> list[Record]:
    """Run the stores' part of W13: 10,000 entries and 200 queries (2,000 and 50 with
    ``quick``); one record for the exact numpy scan, one per store."""
    entries, queries = (2_000, 50) if quick else (10_000, 200)
    return asyncio.run(_w13(entries, queries))


async def _w13(n: int, n_queries: int) -> list[Record]:
    rng = np.random.default_rng(13)
    vectors = _unit(rng.standard_normal((n, DIMENSION)).astype(np.float32))
    queries = _unit(rng.standard_normal((n_queries, DIMENSION)).astype(np.float32))
    entries = [
        Entry(
            scope=f"customer:{i % SCOPES:04d}",
            text=f"order {i}",
            kind="order",
            data={"tier": ("gold", "silver", "bronze")[i % 3], "n": i},
            id=f"order-{i}",
            created=1.7e9 + i,
        )
        for i in range(n)
    ]
    truth = [_exact(vectors, q) for q in queries]
    exact_ns = []
    for q in queries:
        start = time.perf_counter_ns()
        _exact(vectors, q)
        exact_ns.append(time.perf_counter_ns() - start)
    exact_median, exact_p90 = quantiles(exact_ns, MS)
    records: list[Record] = [
        {
            "workload": "W13",
            "name": "memory_exact_scan",
            "store": "numpy",
            "median": round(exact_median, 3),
            "p90": round(exact_p90, 3),
            "unit": "ms",
            "reps": n_queries,
            "entries": n,
            "dimension": DIMENSION,
        }
    ]
    with _postgres() as dsn, tempfile.TemporaryDirectory(prefix="belugaflow-w13-") as tmp:
        stores: dict[str, Store] = {
            "inprocess": InProcessStore(),
            "sqlite": SQLiteStore(Path(tmp) / "memory.db"),
            "postgres": PostgresStore(dsn),
        }
        for name, store in stores.items():
            record = await _measure(store, entries, vectors, queries, truth)
            await store.close()
            median = record["median"]
            record.update(
                store=name,
                exact_median=round(exact_median, 3),
                ratio_to_exact=round(median / exact_median, 1),
                meets_recall=record["recall_at_5"] == 1.0,
            )
            if name == "sqlite":
                record.update(target=SQLITE_TARGET_MS, meets_target=median <= SQLITE_TARGET_MS)
            records.append(record)
    return records


async def _measure(
    store: Store, entries: list[Entry], vectors: Array, queries: Array, truth: list[list[int]]
) -> Record:
    start = time.perf_counter()
    for i in range(0, len(entries), BATCH):
        await store.add(entries[i : i + BATCH], vectors[i : i + BATCH])
    insert_s = time.perf_counter() - start

    for q in queries[:20]:  # warm up: caches, prepared statements
        await store.search(q, k=K)
    times, overlap = [], 0
    for q, best in zip(queries, truth, strict=True):
        begin = time.perf_counter_ns()
        hits = await store.search(q, k=K)
        times.append(time.perf_counter_ns() - begin)
        overlap += len({h.entry.id for h in hits} & {f"order-{i}" for i in best})
    filtered = []
    for j, q in enumerate(queries):
        begin = time.perf_counter_ns()
        await store.search(q, k=K, scope=f"customer:{j % SCOPES:04d}", where={"tier": "gold"})
        filtered.append(time.perf_counter_ns() - begin)
    median, p90 = quantiles(times, MS)
    filtered_median, filtered_p90 = quantiles(filtered, MS)
    return {
        "workload": "W13",
        "name": "memory_query_top5",
        "median": round(median, 3),
        "p90": round(p90, 3),
        "unit": "ms",
        "reps": len(queries),
        "entries": len(entries),
        "dimension": DIMENSION,
        "recall_at_5": round(overlap / (K * len(queries)), 4),
        "insert_rate": round(len(entries) / insert_s),
        "insert_batch": BATCH,
        "filtered_median": round(filtered_median, 3),
        "filtered_p90": round(filtered_p90, 3),
    }


def _exact(vectors: Array, query: Array) -> list[int]:
    """The exact top-K rows by cosine (unit rows: a dot product), best first."""
    scores = vectors @ query
    top = np.argpartition(-scores, K)[:K]
    return [int(i) for i in top[np.argsort(-scores[top])]]


def _unit(rows: Array) -> Array:
    scaled: Array = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return scaled


@contextmanager
def _postgres() -> Iterator[str]:
    """A pgserver Postgres in a temp dir for the run, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="belugaflow-w13-pg-"))
    try:
        yield embedded_postgres(root / "data")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
            from pgserver.postgres_server import get_server

        get_server(root / "data").cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json
    import sys

    for line in w13_stores("--quick" in sys.argv):
        print(json.dumps(line), flush=True)
