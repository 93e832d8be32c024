"""``belugaflow graph ...``: inspect graphs defined in Python modules, or served by the REST
API (``--api``), and run them through the API (``graph run``, in :mod:`._runs`)."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Annotated

import typer

from belugaflow import SpecError
from belugaflow.cli._api import ApiKeyOption, ApiModeOption, connect, through_api
from belugaflow.cli._output import fail
from belugaflow.cli._runs import graph_run, list_graphs_api, show_graph_api
from belugaflow.cli._target import (
    TargetError,
    load_graph_spec,
    load_orchestrator,
    parse_target,
)

__all__ = ["GraphFormat", "graph_app"]

graph_app = typer.Typer(
    help="Inspect graphs defined in Python modules (--app, MODULE:OBJECT) or served by the"
    " REST API (--api), and run them through the API.",
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
            metavar="MODULE:OBJECT|NAME",
            help="Import path of a Graph, CompiledGraph, GraphSpec or zero-argument factory"
            " returning one, e.g. flows:graph or myapp.flows:make_graph (the current directory"
            " is searched first); or, through the API (--api, $BELUGAFLOW_API), a graph's name.",
        ),
    ],
    output_format: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="Output format.", case_sensitive=False),
    ] = GraphFormat.MERMAID,
    api: ApiModeOption = None,
    api_key: ApiKeyOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Through the API: print its whole answer (spec, schema, drawing). Locally:"
            " --format json.",
        ),
    ] = False,
) -> None:
    """Print a graph as a Mermaid flowchart or as its JSON spec: imported from MODULE:OBJECT,
    or the graph NAME the REST API serves (with --api URL, or $BELUGAFLOW_API set and NAME no
    import path).

    Exits 1 if the module does not import, the object is missing or not a graph, or the graph
    does not compile; through the API, 7 if it serves no such graph, 8 if it cannot be reached.
    """
    local = api is None and ":" in target
    if through_api(api, []) and not local:
        spec_json = output_format is GraphFormat.JSON
        show_graph_api(
            connect(api, api_key), target, version=None, spec_json=spec_json, as_json=as_json
        )
        return
    try:
        parse_target(target)
    except ValueError as error:
        raise typer.BadParameter(
            f"{error}; or a graph's name, with --api URL", param_hint="'MODULE:OBJECT|NAME'"
        ) from None
    try:
        spec = load_graph_spec(target, search_dir=os.getcwd())
    except TargetError as error:
        fail(str(error))
    if output_format is GraphFormat.JSON or as_json:
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
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="MODULE:ORCH",
            help="Import path of your Orchestrator (or a zero-argument factory returning one),"
            " e.g. examples.order_processing.app:orch. Without it, the graphs the REST API"
            " serves (--api, $BELUGAFLOW_API).",
            callback=_check_optional_target,
            show_default=False,
        ),
    ] = None,
    api: ApiModeOption = None,
    api_key: ApiKeyOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="One JSON object per graph (through the API: the API's answer)."
        ),
    ] = False,
) -> None:
    """List the graphs a worker of the app serves (--app), or the REST API serves (--api):
    each is a workflow type of its name.

    Exits 1 if the app does not import or a graph does not compile; through the API, 8 if it
    cannot be reached.
    """
    if app is None:
        if not through_api(api, []):
            raise typer.BadParameter(
                "give --app MODULE:ORCH (your app's graphs) or --api URL (the API's);"
                " $BELUGAFLOW_API is not set",
                param_hint="'--app' / '--api'",
            )
        list_graphs_api(connect(api, api_key), as_json=as_json)
        return
    through_api(api, ["--app"])  # --api as well: a usage error
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


def _check_optional_target(value: str | None) -> str | None:
    return None if value is None else _check_target(value)


graph_app.command("run")(graph_run)
