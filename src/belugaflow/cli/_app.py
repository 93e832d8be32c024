"""The root ``belugaflow`` app: global options and the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

import belugaflow
from belugaflow.cli._config import config_app
from belugaflow.cli._graph import graph_app
from belugaflow.cli._keys import keys_app
from belugaflow.cli._memory import memory_app
from belugaflow.cli._replay import replay
from belugaflow.cli._runs import run
from belugaflow.cli._serve import serve
from belugaflow.cli._server import server_app
from belugaflow.cli._up import up
from belugaflow.cli._worker import worker
from belugaflow.cli._workflows import workflows_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="belugaflow",
    help="belugaflow: fault-tolerant workflow orchestration.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    # Error paths print one line; a traceback with locals could show secrets from a config.
    pretty_exceptions_show_locals=False,
)
app.add_typer(config_app, name="config")
app.add_typer(graph_app, name="graph")
app.add_typer(keys_app, name="keys")
app.add_typer(memory_app, name="memory")
app.add_typer(server_app, name="server")
app.add_typer(workflows_app, name="workflows")
app.command("worker")(worker)
app.command("serve")(serve)
app.command("up")(up)
app.command("run")(run)
app.command("replay")(replay)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"belugaflow {belugaflow.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the belugaflow version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """belugaflow: fault-tolerant workflow orchestration."""


def main() -> None:
    """Run the command line (the ``belugaflow`` console script)."""
    app()
