"""``belugaflow keys create``: make an API key for a tenant of the REST API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from belugaflow._apikeys import hash_key, new_key
from belugaflow.cli._output import fail
from belugaflow.config import ApiKeyConfig

__all__ = ["keys_app"]

keys_app = typer.Typer(help="API keys of the REST API (server.auth).", no_args_is_help=True)


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Argument(help="The tenant the key acts for.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Add the key's hash to this keys file (server.auth.keys_file; made, readable"
            " by you only, if missing). Without it, the entry to add is printed.",
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for, to tell keys apart.")] = "",
) -> None:
    """Make an API key for TENANT: the key goes to stdout, once (only its hash is kept).

    The tenant must be one of server.auth.tenants. A running API reads its keys file again
    within a second; to revoke a key, delete its entry.
    """
    key = new_key()
    try:
        entry = ApiKeyConfig(tenant=tenant, hash=hash_key(key), name=name)
    except ValueError:
        fail(
            f"invalid tenant {tenant!r}: up to 63 lowercase letters, digits, '-' and '_',"
            " starting with a letter or digit"
        )
    row = entry.model_dump(exclude_defaults=True)
    if file is None:
        typer.echo("Add to server.auth.keys:\n" + yaml.safe_dump([row], sort_keys=False), err=True)
    else:
        _append(file, row)
        typer.echo(f"added a key for tenant {tenant!r} to {file}", err=True)
    typer.echo("The key, shown this once (send it as 'Authorization: Bearer KEY'):", err=True)
    typer.echo(key)


def _append(file: Path, row: dict[str, Any]) -> None:
    """Add ``row`` to the keys file, keeping what it holds; a new file is private (0600)."""
    document: Any = {}
    if file.exists():
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            fail(f"cannot read the keys file {file}: {error}")
        if not isinstance(document, dict) or not isinstance(document.get("keys", []), list):
            fail(f"{file} is not a keys file (a mapping with a list 'keys')")
    document.setdefault("keys", []).append(row)
    text = yaml.safe_dump(document, sort_keys=False)
    # Written beside, then renamed: a running API never reads half a file.
    partial = file.with_name(f".{file.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    if file.exists():
        os.chmod(partial, file.stat().st_mode & 0o777)
    os.replace(partial, file)
