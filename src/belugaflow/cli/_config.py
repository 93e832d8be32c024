"""``belugaflow config ...``: validate a configuration file."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Union, get_args, get_origin

import typer
import yaml
from pydantic import BaseModel

from belugaflow.cli._output import fail
from belugaflow.config import Config, ConfigError, Secret, load_config

__all__ = ["config_app", "secret_status", "summary_lines"]

config_app = typer.Typer(
    help="Validate configuration files (config.yaml).",
    no_args_is_help=True,
)


@config_app.command("check")
def check(
    file: Annotated[
        str,
        typer.Argument(metavar="FILE", help="The YAML config file, e.g. config.yaml."),
    ],
    show: Annotated[
        bool,
        typer.Option(
            "--show",
            help="Print the effective config (after ${VAR} and BELUGAFLOW__* overrides) as"
            " YAML on stdout, secrets masked.",
        ),
    ] = False,
) -> None:
    """Load FILE as belugaflow would and report whether it is valid.

    The environment applies: ${VAR} placeholders and BELUGAFLOW__SECTION__KEY overrides. A
    secret whose variable is unset is not an error; the summary says which variable it waits
    for. Secret values are never printed. Exits 1 if the file is missing or invalid.
    """
    try:
        config = load_config(file)
    except ConfigError as error:
        fail(str(error))
    if show:
        # stdout stays a pure YAML document (pipeable); the verdict goes to stderr.
        typer.echo(f"{file}: ok", err=True)
        typer.echo(effective_yaml(config), nl=False)
        return
    typer.echo(f"{file}: ok")
    for line in summary_lines(config):
        typer.echo(f"  {line}")


def effective_yaml(config: Config) -> str:
    """The configuration as YAML, in field order; every secret is written as ``**********``."""
    # mode="json" runs Secret's serializer, which masks without reading the value.
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def summary_lines(config: Config) -> list[str]:
    """Aligned ``key  value`` lines: identity, main settings and the state of every secret."""
    provider = config.llm.provider or "none"
    rows = [
        ("app", f"{config.app.name} {config.app.version}"),
        ("task queue", config.orchestration.workflow.task_queue),
        ("graph max_workers", str(config.orchestration.graph.max_workers)),
        ("llm provider", provider),
    ]
    rows += [(key, secret_status(secret)) for key, secret in _secret_fields(config)]
    width = max(len(key) for key, _ in rows)
    return [f"{key.ljust(width)}  {value}" for key, value in rows]


def secret_status(secret: Secret | None) -> str:
    """``set``, ``waiting for VAR`` or ``not configured`` — never the value."""
    if secret is None:
        return "not configured"
    if secret.is_resolved:
        return "set"
    return f"waiting for {secret.var}"


def _secret_fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Secret | None]]:
    """Every field typed ``Secret`` (or ``Secret | None``), as ``(dotted key, value)``."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _secret_fields(value, f"{key}.")
        elif isinstance(value, Secret) or (value is None and _is_secret_type(field.annotation)):
            yield key, value


def _is_secret_type(annotation: object) -> bool:
    if annotation is Secret:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_secret_type(arg) for arg in get_args(annotation))
    return False
