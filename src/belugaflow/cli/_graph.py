"""``belugaflow graph ...``: inspect graphs defined in Python modules."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Annotated

import typer

from belugaflow import SpecError
from belugaflow.cli._output import fail
from belugaflow.cli._target import (
    TargetError,
    load_graph_spec,
    load_orchestrator,
    parse_target,
)

__all__ = ["GraphFormat", "graph_app"]

graph_app = typer.Typer(
    help="Inspect graphs defined in Python modules.",
    no_args_is_help=True,
)


class GraphFormat(StrEnum):
    """Output formats of ``graph show``."""

    MERMAID = "mermaid"
    """A Mermaid flowchart (renders on GitHub and in most Markdown viewers)."""
    JSON = "json"
    """The graph spec as JSON (``GraphSpec.to_dict()``), indented, keys sorted."""


def _check_target(value: str) -> str:
    try:
        parse_target(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return value


@graph_app.command("show")
def show(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:OBJECT",
            help="Import path of a Graph, CompiledGraph, GraphSpec or zero-argument factory"
            " returning one, e.g. flows:graph or myapp.flows:make_graph. The current directory"
            " is searched first.",
            callback=_check_target,
        ),
    ],
    output_format: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="Output format.", case_sensitive=False),
    ] = GraphFormat.MERMAID,
) -> None:
    """Import a graph and print it as a Mermaid flowchart or as its JSON spec.

    Exits 1 if the module does not import, the object is missing or not a graph, or the graph
    does not compile.
    """
    try:
        spec = load_graph_spec(target, search_dir=os.getcwd())
    except TargetError as error:
        fail(str(error))
    if output_format is GraphFormat.JSON:
        typer.echo(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(spec.to_mermaid(), nl=False)


APP_OPTION = typer.Option(
    "--app",
    metavar="MODULE:ORCH",
    help="Import path of your Orchestrator (or a zero-argument factory returning one),"
    " e.g. examples.order_processing.app:orch.",
    callback=_check_target,
)


@graph_app.command("list")
def list_graphs(
    app: Annotated[str, APP_OPTION],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per graph.")] = False,
) -> None:
    """List the graphs a worker of the app serves: each is a workflow type of its own name.

    Exits 1 if the app does not import or a graph does not compile.
    """
    try:
        graphs = load_orchestrator(app, search_dir=os.getcwd()).registry.graphs
    except (TargetError, ValueError, SpecError) as error:
        fail(str(error))
    if not graphs and not as_json:
        typer.echo(f"{app} serves no graphs")
        return
    if not as_json:
        typer.echo(f"{'WORKFLOW TYPE':<24} {'VERSIONS':<10} {'NODES':>5}  WAITS FOR")
    for name, versions in sorted(graphs.items()):
        spec = versions[max(versions)]
        if as_json:
            row = {"workflow_type": name, "versions": sorted(versions), "nodes": len(spec.nodes)}
            typer.echo(json.dumps({**row, "waits_for": sorted(spec.waits)}))
        else:
            listed = ",".join(map(str, sorted(versions)))
            waits = ", ".join(sorted(spec.waits)) or "-"
            typer.echo(f"{name:<24} {listed:<10} {len(spec.nodes):>5}  {waits}")
