"""The Postgres store: entries and their vectors in one table with a pgvector ``vector``
column, reached with psycopg 3's async API (nothing blocks the event loop).

Search is exact by default: no approximate index, so Postgres scans every matching row,
computes pgvector's cosine distance and keeps the best ``k`` (a top-N heapsort), and recall
equals a full scan's. The distance is computed once per row in an inner query that returns
only ``seq`` and the distance; the entries' columns are fetched for the ``k`` winners alone.
Vectors travel in pgvector's binary format (``%b``), sparing the text form of 384 floats.

For large stores, an HNSW index trades exactness for speed::

    CREATE INDEX ON belugaflow_memory.entries USING hnsw (vector vector_cosine_ops);

Postgres then uses it for unfiltered searches; results become approximate, and a filtered
search may return fewer than ``k`` hits (pgvector filters after the index scan; raise
``hnsw.ef_search`` to compensate). The store never creates one itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from .._errors import ConfigError
from ._contract import DimensionError, Entry, Hit, StoreUnavailableError, Vectors
from ._stores_common import (
    check_count,
    check_k,
    check_query,
    check_vectors,
    check_where,
    encode_data,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_SCHEMA", "PostgresStore", "embedded_postgres"]

T = TypeVar("T")

DEFAULT_SCHEMA = "belugaflow_memory"
"""The Postgres schema a store keeps its tables (``entries``, ``meta``) in by default."""
_CONNECT_TIMEOUT = 10
"""Seconds to wait for a connection unless the DSN says otherwise."""
_INSTALL = "pip install 'belugaflow[memory]'"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_COLUMNS = "id, scope, kind, text, data, created"


class PostgresStore:
    """A :class:`~belugaflow.memory.Store` in Postgres with pgvector, searched exactly
    (recall equals a full scan's; see the module notes for an optional HNSW index).

    Tables live in their own schema, created on first use with the ``vector`` extension
    (which needs a role allowed to create it, once per database). The database records its
    vectors' dimension and, when given, the embedder's name: vectors of another width are a
    :class:`DimensionError`, another embedder a :class:`~belugaflow.ConfigError`, both with
    nothing written. A database that cannot be reached is a :class:`StoreUnavailableError`
    naming its host and port, never the password. ``since`` is inclusive and ``until``
    exclusive (``since <= created < until``).

    One connection per store, its queries one at a time; a broken connection is replaced on
    the next call. Needs ``pip install 'belugaflow[memory]'`` (psycopg, pgvector).

    Args:
        dsn: A libpq connection string or ``postgresql://`` URI.
        schema: The schema holding the tables (default :data:`DEFAULT_SCHEMA`).
        dimension: Fix the vectors' width up front (otherwise the first vector saved fixes it).
        embedder: Name of the embedder whose vectors this store holds (``Embedder.name``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        dimension: int | None = None,
        embedder: str | None = None,
    ) -> None:
        pg = _psycopg()
        try:
            params = pg.conninfo.conninfo_to_dict(dsn)
        except pg.ProgrammingError:
            # psycopg's message quotes the part it could not read, which may be a password.
            raise ConfigError(
                "PostgresStore: the DSN cannot be parsed; give key=value pairs or a "
                "postgresql:// URI"
            ) from None
        if not _IDENTIFIER.fullmatch(schema):
            raise ConfigError(f"PostgresStore: schema {schema!r} is not a plain SQL identifier")
        check_count("dimension", dimension, "PostgresStore()", least=1)
        self._dsn = dsn
        self._password = str(params.get("password") or "")
        self._connect_params: dict[str, Any] = (
            {} if "connect_timeout" in params else {"connect_timeout": _CONNECT_TIMEOUT}
        )
        host, port = params.get("host") or "localhost", params.get("port") or 5432
        self.address = f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"
        """Where the database is (host:port/database), for messages: never the password."""
        self.schema = schema
        self._want_dimension = dimension
        self._embedder = embedder
        self._dimension: int | None = None
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._ready = False
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({self.address!r}, schema={self.schema!r})"

    async def add(self, entries: Sequence[Entry], vectors: Vectors | None = None) -> int:
        """Save the entries not saved yet (by id) with their vectors, in one transaction;
        return how many were new."""
        where = f"{self!r}.add()"
        checked = check_vectors(entries, vectors, dimension=None, where=where)
        if not entries:
            return 0
        rows = [
            (
                e.id,
                e.scope,
                e.kind,
                e.text,
                encode_data(e, where),
                e.created,
                None if checked is None else checked[i],
            )
            for i, e in enumerate(entries)
        ]
        sql = (
            f"INSERT INTO {self.schema}.entries ({_COLUMNS}, vector) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %b) ON CONFLICT (id) DO NOTHING"
        )

        async def add(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> int:
            async with conn.transaction():
                # One writer per schema at a time, as in SQLite: two batches inserting the same
                # ids in different orders would otherwise deadlock on the unique index.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
                if checked is not None:
                    await self._fix_dimension(conn, checked.shape[1], where)
                async with conn.cursor() as cursor:
                    await cursor.executemany(sql, rows)
                    return cursor.rowcount  # summed over the rows: the new ones

        return await self._run(add)

    async def entries(
        self, scope: str, *, kind: str | None = None, last: int | None = None
    ) -> list[Entry]:
        """The scope's entries, oldest first (only the newest ``last`` when given)."""
        check_count("last", last, f"{self!r}.entries()")
        sql = f"SELECT {_COLUMNS} FROM {self.schema}.entries WHERE scope = %(scope)s"
        if kind is not None:
            sql += " AND kind = %(kind)s"
        sql += " ORDER BY created DESC, seq DESC"
        if last is not None:
            sql += " LIMIT %(last)s"
        params = {"scope": scope, "kind": kind, "last": last}

        async def read(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> list[Entry]:
            cursor = await conn.execute(sql, params)
            return [_entry(row) for row in reversed(await cursor.fetchall())]

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
        best first (exact unless an HNSW index was added)."""
        subject = f"{self!r}.search()"
        check_k(k, subject)
        equal = check_where(where, subject)
        params: dict[str, Any] = {
            "scope": scope,
            "kind": kind,
            "since": since,
            "until": until,
            "data": json.dumps(equal),
            "k": k,
        }
        conditions = ["vector IS NOT NULL"]
        for name, condition in (
            ("scope", "scope = %(scope)s"),
            ("kind", "kind = %(kind)s"),
            ("since", "created >= %(since)s"),
            ("until", "created < %(until)s"),
        ):
            if params[name] is not None:
                conditions.append(condition)
        if equal:
            # jsonb containment is JSON equality on each key: 1 matches 1.0, not true or "1".
            conditions.append("data @> %(data)s::jsonb")
        sql = (
            f"SELECT {', '.join('e.' + c for c in _COLUMNS.split(', '))}, t.distance FROM ("
            f"SELECT seq, vector <=> %(query)b AS distance FROM {self.schema}.entries "
            f"WHERE {' AND '.join(conditions)} ORDER BY distance, seq LIMIT %(k)s"
            f") AS t JOIN {self.schema}.entries AS e USING (seq) ORDER BY t.distance, t.seq"
        )

        async def search(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> list[Hit]:
            dimension = self._dimension or await self._read_dimension(conn)
            if dimension is None:
                return []  # no vector saved yet
            query = check_query(vector, dimension=dimension, where=subject)
            cursor = await conn.execute(sql, {**params, "query": query})
            return [Hit(_entry(row[:6]), 1.0 - float(row[6])) for row in await cursor.fetchall()]

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
        in_scope = "starts_with(scope, %(scope)s)" if prefix else "scope = %(scope)s"
        doomed = f"SELECT seq, created FROM {self.schema}.entries WHERE {in_scope}"
        if keep_last is not None:
            doomed = (
                "SELECT seq, created FROM (SELECT seq, created, row_number() OVER "
                "(PARTITION BY scope ORDER BY created DESC, seq DESC) AS newer "
                f"FROM {self.schema}.entries WHERE {in_scope}) AS ranked "
                "WHERE newer > %(keep)s"
            )
        if before is not None:
            doomed = f"SELECT seq FROM ({doomed}) AS old WHERE created < %(before)s"
        else:
            doomed = f"SELECT seq FROM ({doomed}) AS old"
        sql = f"DELETE FROM {self.schema}.entries WHERE seq IN ({doomed})"
        params = {"scope": scope, "keep": keep_last, "before": before}

        async def delete(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._run(delete)

    async def scopes(self, prefix: str = "") -> dict[str, int]:
        """Every scope starting with ``prefix`` and how many entries it holds, by name."""
        sql = (
            f"SELECT scope, count(*) FROM {self.schema}.entries "
            'WHERE starts_with(scope, %s) GROUP BY scope ORDER BY scope COLLATE "C"'
        )

        async def read(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> dict[str, int]:
            cursor = await conn.execute(sql, (prefix,))
            return {scope: int(count) for scope, count in await cursor.fetchall()}

        return await self._run(read)

    async def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(
        self, work: Callable[[psycopg.AsyncConnection[tuple[Any, ...]]], Awaitable[T]]
    ) -> T:
        """Run ``work`` on the connection (opened or replaced as needed), one at a time; a
        lost or refused connection becomes a :class:`StoreUnavailableError`."""
        pg = _psycopg()
        async with self._lock:
            known = self._dimension
            try:
                return await work(await self._connection())
            except pg.OperationalError as error:
                self._dimension = known
                conn, self._conn = self._conn, None
                if conn is not None:
                    await conn.close()
                raise self._unavailable("cannot be reached", error) from error
            except BaseException:
                # A dimension read inside a transaction that rolled back was never saved.
                self._dimension = known
                raise

    def _unavailable(self, what: str, error: BaseException) -> StoreUnavailableError:
        reason = str(error).strip()
        if self._password:
            reason = reason.replace(self._password, "***")
        return StoreUnavailableError(
            f"the Postgres memory store at {self.address} {what}: {reason}"
        )

    async def _connection(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        from pgvector.psycopg import register_vector_async

        conn: psycopg.AsyncConnection[tuple[Any, ...]]
        conn = await _psycopg().AsyncConnection.connect(
            self._dsn, autocommit=True, **self._connect_params
        )
        try:
            if not self._ready:
                await self._set_up(conn)
                self._ready = True
            await register_vector_async(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _set_up(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        """Create the extension, schema and tables if missing, and record or compare the
        dimension and embedder. A transaction-scoped advisory lock serializes two processes
        setting up at once (CREATE … IF NOT EXISTS alone can still collide)."""
        pg = _psycopg()
        s = self.schema
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('belugaflow.memory'))")
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except pg.OperationalError:
            raise
        except pg.Error as error:
            raise self._unavailable(
                "has no pgvector: install it on the server and run CREATE EXTENSION vector "
                "as a role allowed to",
                error,
            ) from error
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('belugaflow.memory'))")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)"
            )
            # seq is the order of saving: it breaks ties between entries with equal `created`.
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {s}.entries (
                    seq bigserial PRIMARY KEY,
                    id text NOT NULL UNIQUE,
                    scope text NOT NULL,
                    kind text NOT NULL,
                    text text NOT NULL,
                    data jsonb NOT NULL,
                    created double precision NOT NULL,
                    vector vector
                )"""
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS entries_scope ON {s}.entries (scope, created)"
            )
            if self._want_dimension is not None:
                await self._fix_dimension(conn, self._want_dimension, f"{self!r}")
            if self._embedder is not None:
                await self._check_embedder(conn, self._embedder)

    async def _check_embedder(
        self, conn: psycopg.AsyncConnection[tuple[Any, ...]], embedder: str
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.meta VALUES ('embedder', %s) ON CONFLICT DO NOTHING",
            (embedder,),
        )
        cursor = await conn.execute(f"SELECT value FROM {self.schema}.meta WHERE key = 'embedder'")
        row = await cursor.fetchone()
        if row is not None and row[0] != embedder:
            raise ConfigError(
                f"the Postgres memory store at {self.address} (schema {self.schema}) holds "
                f"vectors of embedder {row[0]!r}, not {embedder!r}: vectors of two models "
                "cannot be compared (use another schema, or the same embedder)"
            )

    async def _read_dimension(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> int | None:
        cursor = await conn.execute(f"SELECT value FROM {self.schema}.meta WHERE key = 'dimension'")
        row = await cursor.fetchone()
        self._dimension = int(row[0]) if row else None
        return self._dimension

    async def _fix_dimension(
        self, conn: psycopg.AsyncConnection[tuple[Any, ...]], dimension: int, where: str
    ) -> None:
        """In a transaction: the store's dimension is ``dimension`` (the first vector fixes
        it, and types the column ``vector(dimension)``), else a :class:`DimensionError`.
        ``ON CONFLICT DO NOTHING`` waits for a concurrent first writer, so two processes
        cannot fix two widths."""
        cursor = await conn.execute(
            f"INSERT INTO {self.schema}.meta VALUES ('dimension', %s) ON CONFLICT DO NOTHING",
            (str(dimension),),
        )
        if cursor.rowcount == 1:
            await conn.execute(
                f"ALTER TABLE {self.schema}.entries "
                f"ALTER COLUMN vector TYPE vector({int(dimension)})"
            )
        saved = await self._read_dimension(conn)
        if saved != dimension:
            raise DimensionError(where, expected=saved or 0, got=dimension)


def _entry(row: Sequence[Any]) -> Entry:
    id_, scope, kind, text, data, created = row
    return Entry(scope=scope, text=text, kind=kind, data=data, id=id_, created=created)


def _psycopg() -> Any:
    """The psycopg module, or an ImportError saying what to install."""
    try:
        import pgvector.psycopg  # noqa: F401  (checked here so the error says what to do)
        import psycopg
        import psycopg.conninfo
    except ImportError:
        raise ImportError(f"PostgresStore needs psycopg 3 and pgvector: {_INSTALL}") from None
    return psycopg


def embedded_postgres(data_dir: str | Path) -> str:
    """Start a Postgres server with pgvector from the ``pgserver`` package (or join the one
    already running on ``data_dir``) and return its DSN, for a :class:`PostgresStore` with no
    Postgres installed. It listens on a Unix socket in ``data_dir`` only (no TCP port) and
    stops when the last process that asked for it exits. Blocks about a second the first time.

    As root, ``pgserver`` runs Postgres as a system user ``pgserver`` it creates (Postgres
    refuses to run as root) and opens ``data_dir``'s parent directories to that user.
    Needs ``pip install 'belugaflow[memory]'``.
    """
    with warnings.catch_warnings():
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset (CI, containers); the
        # fallback it then uses is fine for pgserver's lock file.
        warnings.simplefilter("ignore")
        try:
            from pgserver.postgres_server import get_server
        except ImportError:
            raise ImportError(f"embedded_postgres needs pgserver: {_INSTALL}") from None
    server = get_server(Path(data_dir), cleanup_mode="stop")
    return server.get_uri()
