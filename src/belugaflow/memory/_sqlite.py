"""The SQLite store, the embedded default: one file, entries in a table, vectors in a
``sqlite-vec`` ``vec0`` virtual table, searched exactly.

Why ``vec0`` and not a ``vec_distance_cosine`` scan over the entries table: both are exact
(sqlite-vec 0.1 has no approximate index), but ``vec0`` keeps vectors in contiguous chunks, so
a top-5 query over 10,000 vectors of 384 dimensions takes about 4 ms here against 10-12 ms
for the scan (2 cores; the PyPI build has no SIMD, so the distance loop dominates). Filters
are answered by the entries table's indexes and handed to ``vec0`` as ``rowid IN (…)``, which
keeps the result exact; ``vec0``'s own metadata columns were slower for long scope strings.
Memory-mapping the file (``mmap_size``) halves a query again (7 → 4 ms): ``vec0`` reads its
chunks as blobs, and mmap spares the copy through SQLite's page cache.

Several processes may share one file: WAL mode lets readers run beside a writer, every write
is one ``BEGIN IMMEDIATE`` transaction (all or nothing, and no lock upgrade that could
deadlock), and a writer waits up to :data:`BUSY_TIMEOUT` seconds for another's lock. SQLite
calls block, so each store runs them on its own single worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self, TypeVar, cast

from .._errors import ConfigError
from ._contract import DimensionError, Entry, Hit, StoreUnavailableError, Vectors
from ._stores_common import (
    Scalar,
    check_count,
    check_k,
    check_query,
    check_vectors,
    check_where,
    encode_data,
)

__all__ = ["BUSY_TIMEOUT", "SQLiteStore"]

T = TypeVar("T")

BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another connection's (or process's) write lock to clear."""
_MMAP_BYTES = 256 * 1024 * 1024
_INSTALL = "pip install 'belugaflow[memory]'"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # seq never reuses a number (AUTOINCREMENT): it is the vec0 rowid of the entry's vector,
    # and the order of saving that breaks ties between equal `created`.
    """CREATE TABLE IF NOT EXISTS memory_entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        data TEXT NOT NULL,
        created REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS memory_entries_scope ON memory_entries (scope, created)",
)
_COLUMNS = "id, scope, kind, text, data, created"
_IN_SCOPE = "scope >= :prefix AND substr(scope, 1, length(:prefix)) = :prefix"
"""Scopes starting with :prefix (the first half lets the index narrow the scan)."""


class SQLiteStore:
    """A :class:`~belugaflow.memory.Store` in one SQLite file, vectors searched with
    ``sqlite-vec`` (exact: recall equals a full scan's).

    The file records its vectors' dimension and, when given, the embedder's name, so vectors of
    another width are a :class:`DimensionError` and another embedder is a
    :class:`~belugaflow.ConfigError`, both with nothing written. ``since`` is inclusive and
    ``until`` exclusive (``since <= created < until``). The file is opened on first use;
    after :meth:`close`, a later call opens it again.

    Needs ``pip install 'belugaflow[memory]'`` (``sqlite-vec``, and ``pysqlite3-binary`` where
    Python's own ``sqlite3`` cannot load extensions).

    Args:
        path: The database file; its directory is created if missing.
        dimension: Fix the vectors' width up front (otherwise the first vector saved fixes it).
        embedder: Name of the embedder whose vectors this file holds (``Embedder.name``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dimension: int | None = None,
        embedder: str | None = None,
    ) -> None:
        check_count("dimension", dimension, f"SQLiteStore({os.fspath(path)!r})", least=1)
        self.path = Path(path)
        self._want_dimension = dimension
        self._embedder = embedder
        self._dimension: int | None = None
        self._driver: ModuleType | None = None
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def add(self, entries: Sequence[Entry], vectors: Vectors | None = None) -> int:
        """Save the entries not saved yet (by id) with their vectors, in one transaction;
        return how many were new."""
        where = f"{self!r}.add()"
        checked = check_vectors(entries, vectors, dimension=None, where=where)
        if not entries:
            return 0
        rows = [(e.id, e.scope, e.kind, e.text, encode_data(e, where), e.created) for e in entries]

        def add(conn: sqlite3.Connection) -> int:
            with _write(conn):
                if checked is not None:
                    self._fix_dimension(conn, checked.shape[1], where)
                new = 0
                vector_rows = []
                for i, row in enumerate(rows):
                    cursor = conn.execute(
                        f"INSERT INTO memory_entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (id) DO NOTHING",
                        row,
                    )
                    if cursor.rowcount == 1:
                        new += 1
                        if checked is not None:
                            vector_rows.append((cursor.lastrowid, checked[i].tobytes()))
                if vector_rows:
                    conn.executemany(
                        "INSERT INTO memory_vectors (rowid, embedding) VALUES (?, ?)",
                        vector_rows,
                    )
                return new

        return await self._run(add)

    async def entries(
        self, scope: str, *, kind: str | None = None, last: int | None = None
    ) -> list[Entry]:
        """The scope's entries, oldest first (only the newest ``last`` when given)."""
        check_count("last", last, f"{self!r}.entries()")
        sql = f"SELECT {_COLUMNS} FROM memory_entries WHERE scope = :scope"
        if kind is not None:
            sql += " AND kind = :kind"
        sql += " ORDER BY created DESC, seq DESC"
        if last is not None:
            sql += " LIMIT :last"
        params = {"scope": scope, "kind": kind, "last": last}

        def read(conn: sqlite3.Connection) -> list[Entry]:
            return [_entry(row) for row in reversed(conn.execute(sql, params).fetchall())]

        return await self._run(read)

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
        """The ``k`` entries most similar to ``vector`` among those matching every filter,
        best first (exact: every matching vector is compared)."""
        subject = f"{self!r}.search()"
        check_k(k, subject)
        conditions, params = _filters(scope, kind, since, until, check_where(where, subject))
        knn = "SELECT rowid, distance FROM memory_vectors WHERE embedding MATCH :query AND k = :k"
        if conditions:
            knn += f" AND rowid IN (SELECT seq FROM memory_entries WHERE {conditions})"
        sql = (
            f"SELECT {', '.join('e.' + c for c in _COLUMNS.split(', '))}, t.distance "
            f"FROM ({knn}) AS t JOIN memory_entries AS e ON e.seq = t.rowid "
            "ORDER BY t.distance, e.seq"
        )

        def search(conn: sqlite3.Connection) -> list[Hit]:
            dimension = self._dimension or self._read_dimension(conn)
            if dimension is None:
                return []  # no vector saved yet
            query = check_query(vector, dimension=dimension, where=subject)
            rows = conn.execute(sql, {**params, "query": query.tobytes(), "k": k}).fetchall()
            return [Hit(_entry(row[:6]), 1.0 - float(row[6])) for row in rows]

        return await self._run(search)

    async def delete(
        self,
        scope: str,
        *,
        prefix: bool = False,
        before: float | None = None,
        keep_last: int | None = None,
    ) -> int:
        """Delete the scope's entries (every scope starting with ``scope`` when ``prefix``)
        that meet every condition given: created before ``before``, not among the newest
        ``keep_last`` of their scope. Return how many were deleted."""
        check_count("keep_last", keep_last, f"{self!r}.delete()")
        params: dict[str, Any] = {"prefix": scope, "before": before, "keep": keep_last}
        in_scope = _IN_SCOPE if prefix else "scope = :prefix"
        sql = f"SELECT seq, created FROM memory_entries WHERE {in_scope}"
        if keep_last is not None:
            sql = (
                "SELECT seq, created FROM (SELECT seq, created, row_number() OVER "
                "(PARTITION BY scope ORDER BY created DESC, seq DESC) AS newer "
                f"FROM memory_entries WHERE {in_scope}) WHERE newer > :keep"
            )
        sql = f"SELECT seq FROM ({sql}) WHERE :before IS NULL OR created < :before"

        def delete(conn: sqlite3.Connection) -> int:
            with _write(conn):
                doomed = [seq for (seq,) in conn.execute(sql, params)]
                conn.execute(
                    "DELETE FROM memory_entries WHERE seq IN (SELECT value FROM json_each(?))",
                    (json.dumps(doomed),),
                )
                if doomed and (self._dimension or self._read_dimension(conn)):
                    conn.executemany(
                        "DELETE FROM memory_vectors WHERE rowid = ?", [(s,) for s in doomed]
                    )
                return len(doomed)

        return await self._run(delete)

    async def scopes(self, prefix: str = "") -> dict[str, int]:
        """Every scope starting with ``prefix`` and how many entries it holds, by name."""
        sql = (
            f"SELECT scope, count(*) FROM memory_entries WHERE {_IN_SCOPE} "
            "GROUP BY scope ORDER BY scope"
        )

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(conn.execute(sql, {"prefix": prefix}).fetchall())

        return await self._run(read)

    async def close(self) -> None:
        """Close the file and stop the worker thread (a later call opens them again)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._close_conn)
        executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Everything below runs on the worker thread.

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="belugaflow-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        known = self._dimension
        try:
            return work(self._conn or self._open())
        except Exception as error:
            # A dimension read inside a transaction that rolled back was never saved.
            self._dimension = known
            # The driver's errors (sqlite3's or pysqlite3's classes) that come from the file's
            # state: can't open, locked, read-only, full, not a database. Integrity and
            # programming errors would be bugs of ours and stay as they are.
            driver = self._driver
            if (
                driver is None
                or not isinstance(error, driver.Error)
                or isinstance(error, driver.IntegrityError | driver.ProgrammingError)
            ):
                raise
            raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"the SQLite memory store {self.path} cannot be used: {error}")

    def _open(self) -> sqlite3.Connection:
        driver = self._driver = _driver()
        if str(self.path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise self._unavailable(error) from error
        conn = cast(
            sqlite3.Connection,
            driver.connect(str(self.path), timeout=BUSY_TIMEOUT, isolation_level=None),
        )
        try:
            _load_vec(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            with _write(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                self._check_meta(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _check_meta(self, conn: sqlite3.Connection) -> None:
        """Record or compare what the file holds: its dimension, its embedder's name."""
        if self._want_dimension is not None:
            self._fix_dimension(conn, self._want_dimension, f"{self!r}")
        else:
            self._read_dimension(conn)
        if self._embedder is None:
            return
        conn.execute(
            "INSERT INTO memory_meta VALUES ('embedder', ?) ON CONFLICT DO NOTHING",
            (self._embedder,),
        )
        (saved,) = conn.execute("SELECT value FROM memory_meta WHERE key = 'embedder'").fetchone()
        if saved != self._embedder:
            raise ConfigError(
                f"the SQLite memory store {self.path} holds vectors of embedder {saved!r}, "
                f"not {self._embedder!r}: vectors of two models cannot be compared "
                "(use another file, or the same embedder)"
            )

    def _read_dimension(self, conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT value FROM memory_meta WHERE key = 'dimension'").fetchone()
        self._dimension = int(row[0]) if row else None
        return self._dimension

    def _fix_dimension(self, conn: sqlite3.Connection, dimension: int, where: str) -> None:
        """In a write transaction: the file's dimension is ``dimension`` (the first vector
        fixes it, and creates the vector table), else a :class:`DimensionError`."""
        saved = self._read_dimension(conn)
        if saved is None:
            conn.execute("INSERT INTO memory_meta VALUES ('dimension', ?)", (str(dimension),))
            conn.execute(
                "CREATE VIRTUAL TABLE memory_vectors USING "
                f"vec0(embedding float[{int(dimension)}] distance_metric=cosine)"
            )
            self._dimension = dimension
        elif saved != dimension:
            raise DimensionError(where, expected=saved, got=dimension)

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: taken at once (IMMEDIATE), committed whole or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _filters(
    scope: str | None,
    kind: str | None,
    since: float | None,
    until: float | None,
    equal: Mapping[str, Scalar],
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on ``memory_entries`` for a search's filters, and their parameters."""
    conditions: list[str] = []
    params: dict[str, Any] = {"scope": scope, "kind": kind, "since": since, "until": until}
    for name, condition in (
        ("scope", "scope = :scope"),
        ("kind", "kind = :kind"),
        ("since", "created >= :since"),
        ("until", "created < :until"),
    ):
        if params[name] is not None:
            conditions.append(condition)
    for n, (key, value) in enumerate(equal.items()):
        path, type_ = f":path{n}", f"json_type(data, :path{n})"
        params[path[1:]] = f'$."{key}"'
        if value is None or isinstance(value, bool):
            conditions.append(f"{type_} = '{json.dumps(value)}'")
        else:
            # json_type tells 1 from true and "1" from 1, which json_extract alone does not.
            types = "'text'" if isinstance(value, str) else "'integer', 'real'"
            conditions.append(f"{type_} IN ({types}) AND json_extract(data, {path}) = :value{n}")
            params[f"value{n}"] = value
    return " AND ".join(conditions), params


def _entry(row: Sequence[Any]) -> Entry:
    id_, scope, kind, text, data, created = row
    return Entry(scope=scope, text=text, kind=kind, data=json.loads(data), id=id_, created=created)


def _driver() -> ModuleType:
    """A DB-API ``sqlite3`` module that can load extensions: Python's own when it can, else
    ``pysqlite3`` (``pysqlite3-binary``), else an ImportError saying what to install."""
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        raise ImportError(
            "SQLiteStore needs an sqlite3 module that can load extensions (for sqlite-vec); "
            "this Python's sqlite3 was built without them and pysqlite3 is not installed: "
            f"{_INSTALL} (it installs pysqlite3-binary on Linux)"
        ) from None
    return cast(ModuleType, dbapi2)


def _load_vec(conn: sqlite3.Connection) -> None:
    try:
        import sqlite_vec
    except ImportError:
        raise ImportError(f"SQLiteStore needs sqlite-vec: {_INSTALL}") from None
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)
