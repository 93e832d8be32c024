"""Memory: entries saved under a scope, kept by a :class:`Store`, given back to the next step
by a kind — :class:`BufferMemory`, :class:`WindowMemory`, :class:`TokenBufferMemory`,
:class:`SummaryMemory`, :class:`VectorMemory` (recall by similarity) — which a node declares
with :func:`reads`.

Stores, one interface: :class:`InProcessStore` (numpy, this process only),
:class:`SQLiteStore` (one file, ``sqlite-vec``; the embedded default) and
:class:`PostgresStore` (Postgres with pgvector; :func:`embedded_postgres` starts one from the
``pgserver`` package). Search is exact in all three. See ``docs/memory.md``.

:class:`Retention` caps each scope by age and count on every save; :func:`prune_all` applies
it to a whole store. The ``memory:`` section of ``config.yaml`` names a store, an embedder and a
retention: :func:`memory_store_from_config`, :func:`embedder_from_config`,
:func:`retention_from_config` build them.

Importing this package needs only numpy; the SQLite and Postgres stores import their drivers
when first built and say what to install: ``pip install 'belugaflow[memory]'``.
"""

from belugaflow._public import show_public_paths as _show_public_paths

from ._config import embedder_from_config, memory_store_from_config, retention_from_config
from ._contract import (
    DimensionError,
    Embedder,
    Entry,
    Hit,
    ScopeNotFoundError,
    Store,
    StoreUnavailableError,
    Vectors,
)
from ._inprocess import InProcessStore
from ._kinds import (
    BufferMemory,
    Memory,
    Recalled,
    SummaryMemory,
    TokenBufferMemory,
    VectorMemory,
    WindowMemory,
    estimate_tokens,
)
from ._local import LocalEmbedder
from ._openai import OpenAIEmbedder
from ._postgres import PostgresStore, embedded_postgres
from ._retention import Retention, prune_all
from ._sqlite import SQLiteStore
from ._steps import reads, step_id

__all__ = [
    "BufferMemory",
    "DimensionError",
    "Embedder",
    "Entry",
    "Hit",
    "InProcessStore",
    "LocalEmbedder",
    "Memory",
    "OpenAIEmbedder",
    "PostgresStore",
    "Recalled",
    "Retention",
    "SQLiteStore",
    "ScopeNotFoundError",
    "Store",
    "StoreUnavailableError",
    "SummaryMemory",
    "TokenBufferMemory",
    "VectorMemory",
    "Vectors",
    "WindowMemory",
    "embedded_postgres",
    "embedder_from_config",
    "estimate_tokens",
    "memory_store_from_config",
    "prune_all",
    "reads",
    "retention_from_config",
    "step_id",
]

_show_public_paths(globals())
