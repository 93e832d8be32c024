"""``belugaflow workflows ...``: what the workflows of an app take and answer, what a run did,
and — through the REST API (:mod:`._runs`) — list, await, signal, query, cancel and terminate
runs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from belugaflow import SpecError
from belugaflow._defaults import DEFAULTS
from belugaflow.cli._api import (
    Api,
    ApiError,
    ApiKeyOption,
    ApiModeOption,
    connect,
    quote,
    through_api,
)
from belugaflow.cli._graph import APP_OPTION
from belugaflow.cli._output import ExitCode, fail
from belugaflow.cli._runs import cancel, list_workflows, query, result, signal, terminate
from belugaflow.cli._target import TargetError, load_orchestrator, parse_target
from belugaflow.cli._watch import api_fail
from belugaflow.config import ConfigError, Secret, TemporalTLSConfig, load_config

if TYPE_CHECKING:
    from temporalio.converter import DataConverter

    from belugaflow.graph import GraphSpec
    from belugaflow.graph._timeline import Timeline

__all__ = ["workflows_app"]

workflows_app = typer.Typer(
    help="Describe the workflows an app serves, show what a run did, and drive runs through"
    " the REST API.",
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


def _check_optional_target(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_target(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    return value


@workflows_app.command("show")
def show(
    workflow_id: Annotated[
        str, typer.Argument(metavar="ID", help="The run's workflow id, e.g. order-1042.")
    ],
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="MODULE:ORCH",
            help="Your Orchestrator: its Temporal address, namespace and data converter, and"
            " the graphs it serves by name (to draw them).",
            callback=_check_optional_target,
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help=f"Temporal frontend host:port [default: the app's, else"
            f" {DEFAULTS.temporal_address}]."
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            help=f"Temporal namespace [default: the app's, else {DEFAULTS.temporal_namespace}]."
        ),
    ] = None,
    api: ApiModeOption = None,
    api_key: ApiKeyOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the timeline as one JSON object (through the API: the API's answer,"
            " the timeline under 'timeline').",
        ),
    ] = False,
) -> None:
    """Show what a run did, from its Temporal history: each node (or activity) with its first
    start, end, attempts, outcome and last error, and the graph drawn as Mermaid with each
    node's status.

    Reads Temporal directly, unless --api URL is given (or $BELUGAFLOW_API is set and none of
    --app, --address, --namespace is): then through the REST API (GET /api/v1/workflows/ID),
    which adds the run's result or error.

    Exits 1 if the app does not import, the server cannot be reached or has no such run;
    through the API, 7 if it has no such run, 8 if it cannot be reached.
    """
    local = [
        name
        for name, given in (("--app", app), ("--address", address), ("--namespace", namespace))
        if given is not None
    ]
    if through_api(api, local):
        _show_through_api(workflow_id, connect(api, api_key), as_json=as_json)
        return
    graphs: Mapping[str, Mapping[int, GraphSpec]] | None = None
    converter: DataConverter | None = None
    tls: TemporalTLSConfig | None = None
    temporal_key: Secret | None = None
    if app is not None:
        try:
            orch = load_orchestrator(app, search_dir=os.getcwd())
            graphs = orch.registry.graphs
        except (TargetError, ValueError, SpecError) as error:
            fail(str(error))
        address = address or orch.temporal_address
        namespace = namespace or orch.temporal_namespace
        converter = orch.data_converter
        tls, temporal_key = orch.temporal_tls, orch.temporal_api_key
    else:  # the connection settings of the environment's BELUGAFLOW__TEMPORAL__* overrides
        try:
            settings = load_config().temporal
        except ConfigError as error:
            fail(str(error))
        address = address or settings.address
        namespace = namespace or settings.namespace
        tls, temporal_key = settings.tls, settings.api_key
    address = address or DEFAULTS.temporal_address
    namespace = namespace or DEFAULTS.temporal_namespace
    try:
        timeline = asyncio.run(
            _fetch(
                workflow_id, address, namespace, graphs, converter, tls=tls, api_key=temporal_key
            )
        )
    except ImportError as error:
        fail(f"{error}; install the extra: pip install 'belugaflow[temporal]'")
    except typer.Exit as error:  # reported; the SDK's runtime has started
        _leave(error.exit_code)
    if as_json:
        typer.echo(json.dumps(timeline.to_dict(), indent=2))
    else:
        _print(timeline.to_dict())
        mermaid = timeline.to_mermaid()
        if mermaid is not None:
            typer.echo()
            typer.echo(mermaid, nl=False)
        elif app is None:
            typer.echo(
                "(a graph run by name is drawn with --app MODULE:ORCH, which knows its graph)",
                err=True,
            )
    _leave(ExitCode.OK)


def _leave(code: int) -> NoReturn:
    """Exit at once. The Temporal SDK's native runtime can crash while the interpreter shuts
    down (sdk-python#300: exit code -6), so once it has started, leave without finalizers."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _fetch(
    workflow_id: str,
    address: str,
    namespace: str,
    graphs: Mapping[str, Mapping[int, GraphSpec]] | None,
    converter: DataConverter | None,
    *,
    tls: TemporalTLSConfig | None = None,
    api_key: Secret | None = None,
) -> Timeline:
    from temporalio.service import RPCError, RPCStatusCode

    from belugaflow.temporal import data_converter
    from belugaflow.temporal._connect import TemporalConnectionError, connect
    from belugaflow.temporal._timeline import fetch_timeline

    try:
        client = await connect(
            address,
            namespace=namespace,
            tls=tls,
            api_key=api_key,
            data_converter=converter or data_converter(),
        )
    except (TemporalConnectionError, ConfigError) as error:
        fail(str(error))
    try:
        return await fetch_timeline(client, workflow_id, graphs=graphs)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            fail(f"no workflow {workflow_id!r} in namespace {namespace!r} at {address}")
        fail(f"reading workflow {workflow_id!r} from {address} failed: {error}")


def _show_through_api(workflow_id: str, api: Api, *, as_json: bool) -> None:
    """``workflows show`` through the REST API: the timeline as in direct mode, then the
    run's result or error."""
    try:
        detail = api.call("GET", f"/workflows/{quote(workflow_id)}").body
    except ApiError as error:
        api_fail(error, as_json)
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
        return
    timeline = detail.get("timeline") or {}
    _print(timeline)
    failure = detail.get("error")
    if isinstance(failure, dict):
        where = f" (node {failure['node']})" if failure.get("node") else ""
        typer.echo(f"\nerror {failure.get('code')}{where}: {failure.get('message')}")
    elif detail.get("status") == "completed":
        typer.echo("\nresult:")
        typer.echo(json.dumps(detail.get("result"), indent=2))
    mermaid = timeline.get("mermaid")
    if mermaid:
        typer.echo()
        typer.echo(mermaid, nl=False)


def _print(timeline: Mapping[str, Any]) -> None:
    """The timeline (``Timeline.to_dict()``'s shape, which the API's ``timeline`` shares)."""
    typer.echo(f"run {timeline.get('run_id')} of {timeline.get('graph')}: {timeline.get('status')}")
    start, end = _time(timeline.get("start")), _time(timeline.get("end"))
    if start is not None:
        line = f"  started {start:%Y-%m-%d} {_clock(start)} UTC"
        if end is not None:
            line += f", ended {_clock(end)} (took {_took((end - start).total_seconds())})"
        typer.echo(line)
    typer.echo()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "OUTCOME", "ATTEMPTS", "START", "END", "TOOK"):
        table.add_column(column, no_wrap=True, justify="right" if column == "ATTEMPTS" else "left")
    table.add_column("ERROR", overflow="fold")
    for row in timeline.get("nodes") or ():
        began, ended = _time(row.get("start")), _time(row.get("end"))
        took = ""
        if began is not None and ended is not None:
            took = _took((ended - began).total_seconds())
        table.add_row(
            str(row.get("node")),
            str(row.get("outcome")),
            str(row.get("attempts", 0)),
            _clock(began),
            _clock(ended),
            took,
            row.get("error") or "",
        )
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a file: whole lines, never wrapped at 80
        console.width = 1000
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _time(text: object) -> datetime | None:
    """An ISO 8601 time in UTC, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _clock(when: datetime | None) -> str:
    """Time of day (UTC) to the millisecond, or ``-``."""
    return f"{when:%H:%M:%S}.{when.microsecond // 1000:03d}" if when is not None else "-"


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


workflows_app.command("list")(list_workflows)
workflows_app.command("result")(result)
workflows_app.command("signal")(signal)
workflows_app.command("query")(query)
workflows_app.command("cancel")(cancel)
workflows_app.command("terminate")(terminate)
