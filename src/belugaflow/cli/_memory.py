"""``belugaflow memory ...``: show, list, delete and prune the memory of the config's store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.table import Table

from belugaflow._duration import format_duration
from belugaflow.cli._output import ExitCode, fail
from belugaflow.config import Config, ConfigError, load_config
from belugaflow.memory import (
    Entry,
    Retention,
    ScopeNotFoundError,
    Store,
    StoreUnavailableError,
    memory_store_from_config,
    prune_all,
    retention_from_config,
)

__all__ = ["memory_app"]

T = TypeVar("T")

memory_app = typer.Typer(
    help="Show, list, delete and prune memory, in the store of the config's memory section.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="The config file whose memory.store is the store [default: none: the defaults"
        " with BELUGAFLOW__* overrides, SQLite at .belugaflow/memory.db].",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TEXT_WIDTH = 60
"""Characters of an entry's text a table shows."""


@memory_app.command("show")
def show(
    scope: Annotated[str, typer.Argument(help="The scope, e.g. customer:42 or a run id.")],
    last: Annotated[
        int, typer.Option("--last", min=1, help="Show the newest N entries.", metavar="N")
    ] = 20,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show a scope's entries, oldest first: when each was created (UTC), its kind, id and
    text (shortened; --json gives them whole, with their data).

    Exits 7 if the scope holds nothing, 9 if the store cannot be reached.
    """

    async def read(store: Store) -> tuple[list[Entry], int]:
        entries = await store.entries(scope, last=last)
        if not entries:
            raise ScopeNotFoundError(scope)
        return entries, (await store.scopes(scope)).get(scope, len(entries))

    entries, total = _with_store(config, read, missing=ScopeNotFoundError(scope))
    if as_json:
        rows = [_entry_json(entry) for entry in entries]
        typer.echo(json.dumps({"scope": scope, "total": total, "entries": rows}, indent=2))
        return
    table = _table("CREATED (UTC)", "KIND", "ID", "TEXT")
    for entry in entries:
        table.add_row(_when(entry.created), entry.kind, entry.id, _short(entry.text))
    _print(table)
    if total > len(entries):
        typer.echo(f"(the newest {len(entries)} of {total}; --last N shows more)", err=True)


@memory_app.command("scopes")
def scopes(
    prefix: Annotated[str, typer.Option("--prefix", help="Only scopes starting with this.")] = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List the scopes that hold entries, with how many each holds.

    Exits 9 if the store cannot be reached.
    """

    async def read(store: Store) -> dict[str, int]:
        return await store.scopes(prefix)

    nothing: dict[str, int] = {}
    found = _with_store(config, read, missing=nothing)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo("no scopes" + (f" starting with {prefix!r}" if prefix else ""), err=True)
        return
    table = _table("SCOPE", "ENTRIES")
    for name, count in found.items():
        table.add_row(name, str(count))
    _print(table)


@memory_app.command("delete")
def delete(
    scope: Annotated[str, typer.Argument(help="The scope, e.g. customer:42 or a run id.")],
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Delete every scope starting with SCOPE.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete a scope's entries (with --prefix, those of every scope starting with SCOPE,
    e.g. acme: for a tenant's); asks first, unless --yes.

    Exits 7 if nothing is there, 1 if not confirmed, 9 if the store cannot be reached.
    """

    async def remove(store: Store) -> int:
        found = await store.scopes(scope)
        if not prefix:
            found = {scope: found[scope]} if scope in found else {}
        if not found:
            raise ScopeNotFoundError(scope)
        if not yes:
            what = (
                f"scope {scope!r}" if not prefix else f"{_n(len(found), 'scope')} under {scope!r}"
            )
            try:
                confirmed = typer.confirm(f"Delete {_n(sum(found.values()), 'entry')} of {what}?")
            except click.Abort:  # end of input, Ctrl-C
                confirmed = False
            if not confirmed:
                fail("not confirmed: nothing deleted")
        return await store.delete(scope, prefix=prefix)

    deleted = _with_store(config, remove, missing=ScopeNotFoundError(scope))
    typer.echo(f"deleted {_n(deleted, 'entry')}")


@memory_app.command("prune")
def prune(
    prefix: Annotated[str, typer.Option("--prefix", help="Only scopes starting with this.")] = "",
    config: ConfigOption = None,
) -> None:
    """Apply the config's memory.retention to every scope: delete entries older than its
    ttl, and all but the newest max_entries of each scope. For a periodic job: a scope
    nobody saves to any more is otherwise never pruned.

    Exits 1 if memory.retention sets no limit, 9 if the store cannot be reached.
    """
    loaded = _load(config)
    retention = retention_from_config(loaded)
    if not retention:
        where = f" in {config}" if config is not None else ""
        fail(f"memory.retention{where} sets neither ttl nor max_entries: nothing to prune")

    async def run(store: Store) -> int:
        return await prune_all(store, retention, prefix=prefix)

    deleted = _with_store(config, run, missing=0, loaded=loaded)
    typer.echo(f"deleted {_n(deleted, 'entry')} ({_describe(retention)})")


def _load(file: Path | None) -> Config:
    try:
        return load_config(file)
    except ConfigError as error:
        fail(str(error))


def _with_store(
    file: Path | None,
    work: Callable[[Store], Awaitable[T]],
    *,
    missing: T | ScopeNotFoundError,
    loaded: Config | None = None,
) -> T:
    """``work`` on the config's store, closed afterwards; its errors as exit codes.

    A SQLite file that does not exist yet holds nothing: ``missing`` is the answer (or the
    error) without making the file, so looking never leaves a store behind.
    """
    config = loaded if loaded is not None else _load(file)
    section = config.memory.store if config.memory is not None else None
    path = Path(section.path if section is not None else ".belugaflow/memory.db")
    if (section is None or section.kind == "sqlite") and not path.exists():
        if isinstance(missing, ScopeNotFoundError):
            fail(f"{missing} (the store {path} does not exist yet)", ExitCode.NOT_FOUND)
        return missing
    try:
        store = memory_store_from_config(config)
    except (ConfigError, ImportError) as error:
        fail(str(error))

    async def run() -> T:
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ScopeNotFoundError as error:
        fail(str(error), ExitCode.NOT_FOUND)
    except StoreUnavailableError as error:
        fail(str(error), ExitCode.UNAVAILABLE)
    except ConfigError as error:  # a store holding another embedder's vectors
        fail(str(error))


def _entry_json(entry: Entry) -> dict[str, Any]:
    """An entry as the REST API gives it."""
    return {
        "id": entry.id,
        "scope": entry.scope,
        "kind": entry.kind,
        "text": entry.text,
        "data": dict(entry.data),
        "created": entry.created,
    }


def _n(count: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count} {noun if count == 1 else plural}"


def _when(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str) -> str:
    """The first line, cut to :data:`TEXT_WIDTH` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    cut = line if len(line) <= TEXT_WIDTH else line[: TEXT_WIDTH - 1] + "…"
    return cut + (" …" if "\n" in text.strip() and cut == line else "")


def _describe(retention: Retention) -> str:
    limits = []
    if retention.ttl is not None:
        limits.append(f"ttl {format_duration(retention.ttl)}")
    if retention.max_entries is not None:
        limits.append(f"max_entries {retention.max_entries} per scope")
    return ", ".join(limits)


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column == "ENTRIES" else "left")
    return table


def _print(table: Table) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a file: whole lines, never wrapped at 80
        console.width = 1000
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
