"""``belugaflow workflows ...``: what the workflows of an app take and answer."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from belugaflow import SpecError
from belugaflow.cli._graph import APP_OPTION
from belugaflow.cli._output import fail
from belugaflow.cli._target import TargetError, load_orchestrator

__all__ = ["workflows_app"]

workflows_app = typer.Typer(
    help="Describe the workflows an app serves.",
    no_args_is_help=True,
)


@workflows_app.command("schema")
def schema(
    workflow_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="The workflow type, e.g. order-processing.")
    ],
    app: Annotated[str, APP_OPTION],
) -> None:
    """Print the JSON Schemas of a workflow type: its input, result, signals, updates and
    queries — what any client (the temporal CLI, curl, another language) needs to drive it.

    Exits 1 if the app does not import or serves no such type.
    """
    try:
        schemas = load_orchestrator(app, search_dir=os.getcwd()).schemas()
    except (TargetError, ValueError, SpecError) as error:
        fail(str(error))
    found = schemas.get(workflow_type)
    if found is None:
        known = ", ".join(sorted(schemas)) or "none"
        fail(f"{app} serves no workflow type {workflow_type!r} (it serves: {known})")
    typer.echo(json.dumps(found, indent=2))
