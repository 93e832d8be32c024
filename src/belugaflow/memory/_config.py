"""Build memory from the ``memory:`` section of ``config.yaml``: its store, its embedder and
its retention. Each builder imports its driver only when that kind is chosen, so a config
naming SQLite never needs psycopg, and one without recall never loads a model."""

from __future__ import annotations

from belugaflow.config import Config, MemoryConfig

from ._contract import Embedder, Store
from ._retention import Retention

__all__ = ["embedder_from_config", "memory_store_from_config", "retention_from_config"]


def _section(config: Config | MemoryConfig | None) -> MemoryConfig:
    if isinstance(config, MemoryConfig):
        return config
    found = config.memory if config is not None else None
    return found if found is not None else MemoryConfig()


def memory_store_from_config(
    config: Config | MemoryConfig | None, *, embedder: Embedder | None = None
) -> Store:
    """The store ``memory.store`` names (the defaults when the config has no ``memory``
    section: SQLite at ``.belugaflow/memory.db``). Nothing is opened yet: a SQLite file or a
    Postgres connection is opened on first use.

    Args:
        config: The whole configuration, or its ``memory`` section.
        embedder: The embedder whose vectors the store will hold: a SQLite or Postgres store
            then records its name and refuses another's. Default: none recorded (enough to
            show, delete and prune entries).

    Raises:
        MissingEnvVarError: ``memory.store.dsn`` comes from an unset ``${VAR}``.
        ConfigError: the DSN cannot be parsed.
        ImportError: the store's driver is not installed; the error names the extra.
    """
    store = _section(config).store
    name = embedder.name if embedder is not None else None
    if store.kind == "inprocess":
        from ._inprocess import InProcessStore

        return InProcessStore()
    if store.kind == "postgres":
        from ._postgres import PostgresStore

        assert store.dsn is not None  # the section's validator requires one
        return PostgresStore(store.dsn.get_secret_value(), embedder=name)
    from ._sqlite import SQLiteStore

    return SQLiteStore(store.path, embedder=name)


def embedder_from_config(config: Config | MemoryConfig | None) -> Embedder:
    """The embedder ``memory.embedder`` names (default: the local all-MiniLM-L6-v2, int8).
    A local model loads on its first use.

    Raises:
        MissingEnvVarError: ``memory.embedder.api_key`` comes from an unset ``${VAR}``.
        ValueError: an OpenAI-compatible model whose width is unknown and no ``dimension``;
            no API key and no ``base_url``.
        ImportError: the embedder's packages are not installed; the error names the extra.
    """
    section = _section(config).embedder
    if section.kind == "openai":
        from ._openai import OpenAIEmbedder

        return OpenAIEmbedder(
            section.model or "text-embedding-3-small",
            base_url=section.base_url,
            api_key=section.api_key,
            dimension=section.dimension,
        )
    from ._local import LocalEmbedder

    return LocalEmbedder(quantized=section.model != "all-MiniLM-L6-v2")


def retention_from_config(config: Config | MemoryConfig | None) -> Retention:
    """The :class:`Retention` of ``memory.retention`` (no limit when absent)."""
    section = _section(config).retention
    return Retention(ttl=section.ttl, max_entries=section.max_entries)
