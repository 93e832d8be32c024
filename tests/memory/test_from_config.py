"""The ``memory:`` section of config.yaml: its keys are validated with the problem named, its
secrets stay masked, and the builders make the store, embedder and retention it describes —
real stores, used."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from belugaflow.config import (
    ConfigError,
    MemoryConfig,
    MissingEnvVarError,
    load_config,
    load_config_text,
)
from belugaflow.memory import (
    Entry,
    InProcessStore,
    LocalEmbedder,
    OpenAIEmbedder,
    PostgresStore,
    Retention,
    SQLiteStore,
    embedder_from_config,
    memory_store_from_config,
    retention_from_config,
)


def test_no_memory_section_means_none_and_the_builders_use_the_defaults() -> None:
    """Without the section, config.memory is None; the builders fall back to the defaults."""
    config = load_config(env={})
    assert config.memory is None
    store = memory_store_from_config(config)
    assert isinstance(store, SQLiteStore) and store.path == Path(".belugaflow/memory.db")
    assert retention_from_config(config) == Retention()
    assert load_config_text("memory: {}", env={}).memory == MemoryConfig()


def test_the_section_loads_with_every_key() -> None:
    config = load_config_text(
        """
memory:
  store: {kind: postgres, dsn: "${MEMORY_DSN}"}
  embedder: {kind: openai, model: nomic-embed-text, base_url: "http://127.0.0.1:9/v1",
             api_key: "${EMBED_KEY}", dimension: 768}
  retention: {ttl: 30d, max_entries: 500}
""",
        env={"MEMORY_DSN": "postgresql://app:hunter2@db:5432/memory"},
    )
    memory = config.memory
    assert memory is not None
    assert memory.store.dsn is not None
    assert memory.store.dsn.get_secret_value() == "postgresql://app:hunter2@db:5432/memory"
    assert memory.embedder.api_key is not None and not memory.embedder.api_key.is_resolved
    assert memory.retention.ttl == timedelta(days=30) and memory.retention.max_entries == 500
    assert "hunter2" not in repr(config) and "hunter2" not in config.model_dump_json()
    assert retention_from_config(config) == Retention(ttl=timedelta(days=30), max_entries=500)


def test_an_override_turns_the_section_on() -> None:
    """BELUGAFLOW__MEMORY__... sets a key of the optional section, which then exists."""
    config = load_config(env={"BELUGAFLOW__MEMORY__RETENTION__MAX_ENTRIES": "20"})
    assert config.memory is not None and config.memory.retention.max_entries == 20
    with pytest.raises(ConfigError, match="did you mean 'max_entries'"):
        load_config(env={"BELUGAFLOW__MEMORY__RETENTION__MAX_ENTRY": "20"})


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("memory: {store: {kind: postgres}}", "memory.store", "kind: postgres needs a dsn"),
        ("memory: {store: {kind: redis}}", "memory.store.kind", "'sqlite', 'postgres'"),
        ("memory: {store: {path: ''}}", "memory.store.path", "at least 1 character"),
        ("memory: {embedder: {model: e5-large}}", "memory.embedder", "not 'e5-large'"),
        ("memory: {embedder: {dimension: 0}}", "memory.embedder.dimension", "or equal to 1"),
        ("memory: {retention: {ttl: 0s}}", "memory.retention.ttl", "greater than zero"),
        ("memory: {retention: {max_entries: 0}}", "memory.retention.max_entries", "or equal to 1"),
        ("memory: {retention: {max_entries: true}}", "memory.retention.max_entries", "integer"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, env={})
    assert caught.value.key == key and message in str(caught.value)


async def test_the_sqlite_store_is_made_at_its_path(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "memory.db"
    config = load_config_text(f"memory: {{store: {{path: '{path}'}}}}", env={})
    store = memory_store_from_config(config)
    assert isinstance(store, SQLiteStore)
    try:
        await store.add([Entry("s", "hello")])
        assert path.is_file() and await store.scopes() == {"s": 1}
    finally:
        await store.close()


async def test_the_postgres_store_reaches_its_dsn(postgres_dsn: str) -> None:
    config = load_config_text(
        "memory: {store: {kind: postgres, dsn: '${DSN}'}}", env={"DSN": postgres_dsn}
    )
    store = memory_store_from_config(config.memory)  # the section alone works too
    assert isinstance(store, PostgresStore)
    try:
        await store.delete("from-config")
        await store.add([Entry("from-config", "hello")])
        assert await store.scopes("from-config") == {"from-config": 1}
    finally:
        await store.delete("from-config")
        await store.close()


def test_an_unset_dsn_fails_when_the_store_is_built() -> None:
    """The DSN is a secret: the file loads, and the store names the missing variable."""
    config = load_config_text("memory: {store: {kind: postgres, dsn: '${DSN}'}}", env={})
    with pytest.raises(MissingEnvVarError) as caught:
        memory_store_from_config(config)
    assert caught.value.var == "DSN" and caught.value.key == "memory.store.dsn"


def test_the_in_process_store() -> None:
    config = load_config_text("memory: {store: {kind: inprocess}}", env={})
    assert isinstance(memory_store_from_config(config), InProcessStore)


async def test_a_store_built_for_an_embedder_records_its_name(tmp_path: Path) -> None:
    """Given the embedder, a SQLite store refuses a file of another embedder's vectors."""
    path = tmp_path / "memory.db"
    config = load_config_text(f"memory: {{store: {{path: '{path}'}}}}", env={})
    first = memory_store_from_config(config, embedder=LocalEmbedder(quantized=True))
    await first.add([Entry("s", "hello")])
    await first.close()
    other = memory_store_from_config(config, embedder=LocalEmbedder(quantized=False))
    try:
        with pytest.raises(ConfigError, match="holds vectors of embedder"):
            await other.scopes()
    finally:
        await other.close()


def test_the_embedders() -> None:
    local = embedder_from_config(load_config(env={}))
    assert isinstance(local, LocalEmbedder) and local.name == "all-MiniLM-L6-v2-int8"
    plain = embedder_from_config(
        load_config_text("memory: {embedder: {model: all-MiniLM-L6-v2}}", env={})
    )
    assert plain.name == "all-MiniLM-L6-v2"
    remote = embedder_from_config(
        load_config_text(
            "memory: {embedder: {kind: openai, model: nomic-embed-text,"
            " base_url: 'http://127.0.0.1:9/v1', dimension: 768}}",
            env={},
        )
    )
    assert isinstance(remote, OpenAIEmbedder)
    assert (remote.name, remote.dimension, remote.base_url) == (
        "nomic-embed-text",
        768,
        "http://127.0.0.1:9/v1",
    )


def test_an_openai_embedder_needs_its_key() -> None:
    config = load_config_text("memory: {embedder: {kind: openai, api_key: '${EMBED_KEY}'}}", env={})
    with pytest.raises(MissingEnvVarError) as caught:
        embedder_from_config(config)
    assert caught.value.key == "memory.embedder.api_key"
