"""Memory: entries saved under a scope, kept by a :class:`Store`, given back to the next step
by a kind — :class:`BufferMemory`, :class:`WindowMemory`, :class:`TokenBufferMemory`,
:class:`SummaryMemory`, :class:`VectorMemory` (recall by similarity) — which a node declares
with :func:`reads`.

Stores, one interface: :class:`InProcessStore` (numpy, this process only),
:class:`SQLiteStore` (one file, ``sqlite-vec``; the embedded default) and
:class:`PostgresStore` (Postgres with pgvector; :func:`embedded_postgres` starts one from the
``pgserver`` package). Search is exact in all three. See ``docs/memory.md``.

Importing this package needs only numpy; the SQLite and Postgres stores import their drivers
when first built and say what to install: ``pip install 'belugaflow[memory]'``.
"""

from belugaflow._public import show_public_paths as _show_public_paths

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
    "estimate_tokens",
    "reads",
    "step_id",
]

_show_public_paths(globals())
