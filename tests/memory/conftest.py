"""Fixtures of the memory tests.

``backend`` is parametrized over the three stores, so one test body runs on each: it opens
stores of one kind on one fresh location — the one in-process store, a SQLite file under
``tmp_path``, or a fresh schema of the session's Postgres — and closes them afterwards.
``postgres_dsn`` is that Postgres: one ``pgserver`` instance for the whole session, started
only when a Postgres test runs.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from belugaflow.memory import (
    InProcessStore,
    LocalEmbedder,
    PostgresStore,
    SQLiteStore,
    Store,
    embedded_postgres,
)

KINDS = ["inprocess", "sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A Postgres with pgvector from ``pgserver``, stopped and deleted at the end.

    Its data lives in a ``mkdtemp`` directory, not pytest's temp tree: as root, pgserver opens
    every parent of its data directory to its ``pgserver`` user, and pytest's own root should
    stay private.
    """
    root = Path(tempfile.mkdtemp(prefix="belugaflow-pg-"))
    data = root / "data"
    dsn = embedded_postgres(data)
    try:
        yield dsn
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
            from pgserver.postgres_server import get_server

        get_server(data).cleanup()
        shutil.rmtree(root, ignore_errors=True)


class Backend:
    """Opens stores of one kind, all on the same data, and closes them at the end."""

    def __init__(self, kind: str, location: str | Path | None) -> None:
        self.kind = kind
        self.location = location
        self.opened: list[Store] = []
        self._inprocess: InProcessStore | None = None

    @property
    def shared(self) -> bool:
        """Whether two stores opened here are two objects on the same data."""
        return self.kind != "inprocess"

    def open(self, **options: Any) -> Store:
        """A store on this backend's data (the in-process one is a single object)."""
        store: Store
        if self.kind == "inprocess":
            if self._inprocess is None:
                self._inprocess = InProcessStore(**options)
            store = self._inprocess
        elif self.kind == "sqlite":
            store = SQLiteStore(Path(str(self.location)), **options)
        else:
            dsn, schema = str(self.location).split("#")
            store = PostgresStore(dsn, schema=schema, **options)
        self.opened.append(store)
        return store


@pytest.fixture(params=KINDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """One store kind on fresh data (a new file; a new Postgres schema)."""
    kind: str = request.param
    location: str | Path | None = None
    if kind == "sqlite":
        location = tmp_path / "memory.db"
    elif kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        location = f"{dsn}#t_{uuid.uuid4().hex[:12]}"
    backend = Backend(kind, location)
    yield backend
    for store in backend.opened:
        await store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A store of the backend's kind on fresh data."""
    return backend.open()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache directory, so each session makes the int8 model as a first use does."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def local(models_dir: Path) -> LocalEmbedder:
    """The default local embedder; its model loads on the first test that embeds."""
    return LocalEmbedder(cache_dir=models_dir)
