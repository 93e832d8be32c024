"""``belugaflow memory show|scopes|delete|prune`` on a real SQLite store named by a config file
(and a Postgres DSN where nothing listens, for the store that is down)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from belugaflow.cli import app
from belugaflow.memory import Entry, SQLiteStore

from .test_cli import run_script

runner = CliRunner()
HOUR = 3600.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BELUGAFLOW__ override of the developer's reaches the commands."""
    for name in list(os.environ):
        if name.upper().startswith("BELUGAFLOW__"):
            monkeypatch.delenv(name)


def invoke(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, ["memory", *args], input=input)


def config(tmp_path: Path, retention: str = "{}") -> tuple[Path, Path]:
    """A config file whose memory store is ``tmp_path/memory.db``; (config, database)."""
    db = tmp_path / "memory.db"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"memory:\n  store: {{path: '{db}'}}\n  retention: {retention}\n", encoding="utf-8"
    )
    return path, db


def seed(db: Path, entries: list[Entry]) -> None:
    async def add() -> None:
        async with SQLiteStore(db) as store:
            await store.add(entries)

    asyncio.run(add())


def scopes(db: Path) -> dict[str, int]:
    async def read() -> dict[str, int]:
        async with SQLiteStore(db) as store:
            return await store.scopes()

    return asyncio.run(read())


def notes(scope: str, n: int, *, age: float = 60.0) -> list[Entry]:
    start = time.time() - age
    return [
        Entry(scope, f"note {i} of {scope}", id=f"{scope}/{age}/{i}", created=start + i)
        for i in range(n)
    ]


def test_show_prints_the_newest_entries_oldest_first(tmp_path: Path) -> None:
    file, db = config(tmp_path)
    long = "an order of 3 blue widgets for a customer of the gold tier " * 3
    seed(db, [Entry("customer:42", long, kind="order", id="o-1", created=1_700_000_000.0)])
    seed(db, notes("customer:42", 3) + notes("customer:7", 1))
    result = invoke("show", "customer:42", "--last", "3", "--config", str(file))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CREATED", "(UTC)", "KIND", "ID", "TEXT"]
    assert [line.split()[-4:] for line in lines[1:]] == [
        ["note", str(i), "of", "customer:42"] for i in range(3)
    ]
    assert "the newest 3 of 4; --last N shows more" in result.stderr

    result = invoke("show", "customer:42", "--config", str(file))
    first = result.stdout.splitlines()[1]
    assert first.startswith("2023-11-14 22:13:20  order  o-1")
    assert first.endswith("…") and len(first.split("o-1", 1)[1].strip()) == 60


def test_show_json_gives_the_entries_whole(tmp_path: Path) -> None:
    file, db = config(tmp_path)
    entry = Entry("run:1", "line one\nline two", kind="step", data={"a": [1, 2]}, id="e")
    seed(db, [entry])
    result = invoke("show", "run:1", "--json", "--config", str(file))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "scope": "run:1",
        "total": 1,
        "entries": [
            {
                "id": "e",
                "scope": "run:1",
                "kind": "step",
                "text": "line one\nline two",
                "data": {"a": [1, 2]},
                "created": entry.created,
            }
        ],
    }
    table = invoke("show", "run:1", "--config", str(file)).stdout
    assert table.splitlines()[1].endswith("line one …")  # more lines follow


def test_show_of_an_empty_scope_is_not_found(tmp_path: Path) -> None:
    """Exit 7 with the scope named; a store that does not exist yet is not made by looking."""
    file, db = config(tmp_path)
    result = invoke("show", "nobody", "--config", str(file))
    assert result.exit_code == 7
    assert "no memory under scope 'nobody'" in result.stderr
    assert f"the store {db} does not exist yet" in result.stderr
    assert not db.exists()
    seed(db, notes("somebody", 1))
    result = invoke("show", "nobody", "--config", str(file))
    assert result.exit_code == 7 and "no memory under scope 'nobody'" in result.stderr


def test_scopes_lists_each_with_its_count(tmp_path: Path) -> None:
    file, db = config(tmp_path)
    assert invoke("scopes", "--config", str(file)).stderr.strip() == "no scopes"
    seed(db, notes("acme:c-1", 2) + notes("acme:c-2", 1) + notes("globex:c-1", 4))
    result = invoke("scopes", "--config", str(file))
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["SCOPE", "ENTRIES"],
        ["acme:c-1", "2"],
        ["acme:c-2", "1"],
        ["globex:c-1", "4"],
    ]
    result = invoke("scopes", "--prefix", "acme:", "--json", "--config", str(file))
    assert json.loads(result.stdout) == {"acme:c-1": 2, "acme:c-2": 1}
    result = invoke("scopes", "--prefix", "initech:", "--config", str(file))
    assert result.exit_code == 0 and "no scopes starting with 'initech:'" in result.stderr


def test_delete_asks_first(tmp_path: Path) -> None:
    file, db = config(tmp_path)
    seed(db, notes("run:1", 3) + notes("run:10", 2))
    refused = invoke("delete", "run:1", "--config", str(file), input="n\n")
    assert refused.exit_code == 1
    assert "Delete 3 entries of scope 'run:1'?" in refused.stdout
    assert "not confirmed: nothing deleted" in refused.stderr
    no_input = invoke("delete", "run:1", "--config", str(file), input="")
    assert no_input.exit_code == 1 and scopes(db) == {"run:1": 3, "run:10": 2}

    accepted = invoke("delete", "run:1", "--config", str(file), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.splitlines()[-1] == "deleted 3 entries"
    assert scopes(db) == {"run:10": 2}  # run:10 is another scope, not under run:1


def test_delete_a_prefix_with_yes(tmp_path: Path) -> None:
    file, db = config(tmp_path)
    seed(db, notes("acme:c-1", 2) + notes("acme:c-2", 1) + notes("globex:c-1", 4))
    result = invoke("delete", "acme:", "--prefix", "--yes", "--config", str(file))
    assert result.exit_code == 0, result.output
    assert result.stdout == "deleted 3 entries\n"
    assert scopes(db) == {"globex:c-1": 4}
    asked = invoke("delete", "globex:", "--prefix", "--config", str(file), input="y\n")
    assert "Delete 4 entries of 1 scope under 'globex:'?" in asked.stdout


def test_delete_of_nothing_is_not_found(tmp_path: Path) -> None:
    file, db = config(tmp_path)
    seed(db, notes("acme:c-1", 1))
    for args in (["acme"], ["globex:", "--prefix"]):
        result = invoke("delete", *args, "--yes", "--config", str(file))
        assert result.exit_code == 7, result.output
    assert scopes(db) == {"acme:c-1": 1}


def test_prune_applies_the_configured_retention(tmp_path: Path) -> None:
    file, db = config(tmp_path, "{ttl: 1h, max_entries: 2}")
    seed(db, notes("a", 4, age=HOUR / 2) + notes("b", 3, age=2 * HOUR) + notes("c", 1))
    result = invoke("prune", "--config", str(file))
    assert result.exit_code == 0, result.output
    assert result.stdout == "deleted 5 entries (ttl 1h, max_entries 2 per scope)\n"
    assert scopes(db) == {"a": 2, "c": 1}
    assert invoke("prune", "--config", str(file)).stdout.startswith("deleted 0 entries")


def test_prune_without_limits_is_an_error(tmp_path: Path) -> None:
    file, _ = config(tmp_path)
    result = invoke("prune", "--config", str(file))
    assert result.exit_code == 1
    assert f"memory.retention in {file} sets neither ttl nor max_entries" in result.stderr


def test_a_store_that_is_down_exits_9_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    file = tmp_path / "config.yaml"
    file.write_text("memory: {store: {kind: postgres, dsn: '${DSN}'}}\n", encoding="utf-8")
    dsn = f"postgresql://app:hunter2@127.0.0.1:{port}/memory?connect_timeout=5"
    result = runner.invoke(app, ["memory", "scopes", "--config", str(file)], env={"DSN": dsn})
    assert result.exit_code == 9, result.output
    assert f"127.0.0.1:{port}/memory" in result.stderr and "hunter2" not in result.output


def test_a_bad_config_exits_1(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("memory: {store: {kind: redis}}\n", encoding="utf-8")
    result = invoke("scopes", "--config", str(file))
    assert result.exit_code == 1 and "memory.store.kind" in result.stderr


def test_without_config_the_default_store_is_in_the_working_directory(tmp_path: Path) -> None:
    """No --config: the defaults, SQLite at .belugaflow/memory.db (the console script)."""
    seed(tmp_path / ".belugaflow" / "memory.db", notes("s", 2))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BELUGAFLOW__")}
    done = run_script("memory", "scopes", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"s": 2}
    done = run_script("memory", "show", "t", cwd=tmp_path, env=env)
    assert done.returncode == 7 and done.stderr.startswith("error: no memory under scope 't'")
