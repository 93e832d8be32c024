"""The commands that drive runs through the REST API: ``belugaflow run``, ``belugaflow
workflows list|result|signal|query|cancel|terminate`` and ``belugaflow graph run`` — and the
API side of ``graph list`` and ``graph show``.

Each is one or two requests (:mod:`._api`); ``--json`` prints the API's answer as it came, and
every failure is one ``error:`` line and an exit code of :class:`~._output.ExitCode`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from belugaflow.cli._api import (
    Api,
    ApiError,
    ApiKeyOption,
    ApiOption,
    JsonOption,
    connect,
    parse_json_argument,
    quote,
)
from belugaflow.cli._output import ExitCode
from belugaflow.cli._watch import api_fail, await_result, report_result, watch_and_report

__all__ = [
    "WorkflowStatus",
    "cancel",
    "graph_run",
    "list_graphs_api",
    "list_workflows",
    "query",
    "result",
    "run",
    "show_graph_api",
    "signal",
    "terminate",
]

IdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The run's workflow id, e.g. order-1042.")
]
InputOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        metavar="JSON|@FILE",
        help="The input: JSON, @FILE (a file of JSON) or @- (standard input).",
        show_default=False,
    ),
]
StartIdOption = Annotated[
    str | None,
    typer.Option(
        "--id",
        metavar="ID",
        help="The workflow id, and the idempotency key: starting it again gives the run it"
        " started, never a second one [default: a fresh id].",
        show_default=False,
    ),
]
WaitFlag = Annotated[
    bool,
    typer.Option("--wait", help="Show the run's progress as it happens, then print its result."),
]


class WorkflowStatus(StrEnum):
    """The statuses ``workflows list --status`` filters by (Temporal's names)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    TIMED_OUT = "timed_out"
    CONTINUED_AS_NEW = "continued_as_new"


def _call(
    api: Api, method: str, path: str, body: Any = None, *, as_json: bool, **options: Any
) -> Any:
    """One request's JSON answer; on failure, report and exit."""
    try:
        return api.call(method, path, body, **options).body
    except ApiError as error:
        api_fail(error, as_json)


def _started(api: Api, run: Any, *, created: bool, wait: bool, as_json: bool) -> NoReturn:
    """After a start: say which run it is, or follow it (``--wait``)."""
    if not isinstance(run, dict) or "id" not in run:
        api_fail(ApiError(f"the API's answer names no run: {run!r}", ExitCode.INVALID), as_json)
    if wait:
        watch_and_report(api, run, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(run, indent=2))
    else:
        what = "started" if created else f"found the run this id started ({run.get('status')}):"
        typer.echo(f"{what} {run['id']} ({run.get('type')}, run {run.get('run_id')})")
        typer.echo(f"  run page  {api.url}/runs/{quote(str(run['id']))}")
    raise typer.Exit(ExitCode.OK)


def _start(
    api: Api, path: str, body: Any, *, query: dict[str, Any], wait: bool, as_json: bool
) -> NoReturn:
    try:
        reply = api.call("POST", path, body, send=True, query=query)
    except ApiError as error:
        api_fail(error, as_json)
    _started(api, reply.body, created=reply.status == 201, wait=wait, as_json=as_json)


def run(
    workflow_type: Annotated[
        str,
        typer.Argument(
            metavar="TYPE",
            help="A graph's name (belugaflow graph list) or a hand-written workflow's type,"
            " e.g. order-processing.",
        ),
    ],
    input: InputOption = None,
    workflow_id: StartIdOption = None,
    wait: WaitFlag = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run through the REST API (POST /api/v1/workflows); with --wait, show each
    node's progress as it happens, then the result.

    The input is checked against the type's published schema before anything starts. Exit
    codes (docs/cli.md): 0 started (with --wait: completed), 3 failed, 4 cancelled or
    terminated, 5 timed out, 6 input refused, 7 unknown type, 8 API unreachable.
    """
    value = parse_json_argument(input, "'--input'")
    client = connect(api, api_key)
    body: dict[str, Any] = {"type": workflow_type, "input": value}
    if workflow_id is not None:
        body["id"] = workflow_id
    _start(client, "/workflows", body, query={}, wait=wait, as_json=as_json)


def graph_run(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The graph's name.")],
    input: InputOption = None,
    workflow_id: StartIdOption = None,
    wait: WaitFlag = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a durable run of a graph through the REST API (POST /api/v1/graphs/NAME/runs);
    the input is its initial state (default {}). With --wait, as `belugaflow run --wait`.

    Exit codes as `belugaflow run`; an unknown graph is 7.
    """
    value = parse_json_argument(input, "'--input'")
    client = connect(api, api_key)
    state = {} if value is None else value
    path = f"/graphs/{quote(name)}/runs"
    _start(client, path, state, query={"id": workflow_id}, wait=wait, as_json=as_json)


def list_workflows(
    status: Annotated[
        WorkflowStatus | None,
        typer.Option(help="Only runs with this status.", case_sensitive=False, show_default=False),
    ] = None,
    workflow_type: Annotated[
        str | None,
        typer.Option("--type", metavar="TYPE", help="Only runs of this type.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most runs on the page.")] = 20,
    cursor: Annotated[
        str | None,
        typer.Option(help="The next cursor a page before printed.", show_default=False),
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, a page at a time (GET /api/v1/workflows): a table, then the
    cursor of the next page if there is one."""
    client = connect(api, api_key)
    query = {
        "status": status.value if status is not None else None,
        "type": workflow_type,
        "limit": limit,
        "cursor": cursor,
    }
    page = _call(client, "GET", "/workflows", as_json=as_json, query=query)
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    items = page.get("items", []) if isinstance(page, dict) else []
    if not items:
        typer.echo("no workflows" + (" on this page" if cursor else ""))
    else:
        rows = [
            [
                str(item.get("id")),
                str(item.get("type")),
                str(item.get("status")),
                _when(item.get("start_time")),
                _when(item.get("close_time")),
            ]
            for item in items
        ]
        print_table(["ID", "TYPE", "STATUS", "STARTED (UTC)", "CLOSED (UTC)"], rows)
    following = page.get("next_cursor") if isinstance(page, dict) else None
    if following:
        typer.echo(f"next page: --cursor {following}")


def result(
    workflow_id: IdArgument,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="How long to wait for a running run to end (0: answer at once).",
        ),
    ] = 0.0,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a run's result (GET /api/v1/workflows/ID/result), waiting up to --wait seconds.

    Exit codes: 0 completed, 3 failed, 4 cancelled or terminated, 5 timed out, 7 no such
    run, 10 still running.
    """
    client = connect(api, api_key)
    try:
        reply = await_result(client, workflow_id, wait)
    except ApiError as error:
        api_fail(error, as_json)
    report_result(reply, workflow_id, as_json=as_json)


def signal(
    workflow_id: IdArgument,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The signal, e.g. review.")],
    value: Annotated[
        str | None,
        typer.Option(
            "--value",
            metavar="JSON|@FILE",
            help="The signal's value: JSON, @FILE or @- [default: null].",
            show_default=False,
        ),
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a signal to a run (POST /api/v1/workflows/ID/signals/NAME), checked against the
    signal's published schema first: an invalid value is refused (6) and nothing is sent."""
    sent = parse_json_argument(value, "'--value'")
    client = connect(api, api_key)
    path = f"/workflows/{quote(workflow_id)}/signals/{quote(name)}"
    answer = _call(client, "POST", path, sent, as_json=as_json, send=True)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        typer.echo(f"sent {name!r} to {workflow_id}")


def query(
    workflow_id: IdArgument,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The query; every graph run answers progress.")
    ],
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask a run a query (GET /api/v1/workflows/ID/queries/NAME) and print the answer as
    JSON. A worker answers it: with none polling, it exits 9."""
    client = connect(api, api_key)
    path = f"/workflows/{quote(workflow_id)}/queries/{quote(name)}"
    answer = _call(client, "GET", path, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        found = answer.get("result") if isinstance(answer, dict) else answer
        typer.echo(json.dumps(found, indent=2))


def cancel(
    workflow_id: IdArgument,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask a run to stop (POST /api/v1/workflows/ID/cancel): it runs its compensations and
    ends cancelled. A run that has ended already exits 1."""
    client = connect(api, api_key)
    answer = _call(client, "POST", f"/workflows/{quote(workflow_id)}/cancel", as_json=as_json)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        typer.echo(f"cancel requested: {workflow_id} runs its compensations, then ends")


def terminate(
    workflow_id: IdArgument,
    reason: Annotated[
        str | None,
        typer.Option(help="Why: recorded in the run's history.", show_default=False),
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a run at once (POST /api/v1/workflows/ID/terminate): no code of it runs again,
    so no compensation either (prefer cancel). A run that has ended already exits 1."""
    client = connect(api, api_key)
    body = {"reason": reason} if reason is not None else None
    path = f"/workflows/{quote(workflow_id)}/terminate"
    answer = _call(client, "POST", path, body, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        typer.echo(f"terminated {workflow_id}")


# -- graph list and graph show, through the API ---------------------------------------------------


def list_graphs_api(api: Api, *, as_json: bool) -> None:
    """``GET /api/v1/graphs`` as a table (or its JSON)."""
    graphs = _call(api, "GET", "/graphs", as_json=as_json)
    if as_json:
        typer.echo(json.dumps(graphs, indent=2))
        return
    if not graphs:
        typer.echo(f"the API at {api.url} serves no graphs")
        return
    rows = [
        [
            str(graph.get("name")),
            ",".join(str(v) for v in graph.get("versions", [])),
            str(graph.get("source")),
            ", ".join(graph.get("signals", [])) or "-",
        ]
        for graph in graphs
    ]
    print_table(["WORKFLOW TYPE", "VERSIONS", "SOURCE", "WAITS FOR"], rows)


def show_graph_api(
    api: Api, name: str, *, version: int | None, spec_json: bool, as_json: bool
) -> None:
    """``GET /api/v1/graphs/NAME``: its Mermaid drawing, its spec (``spec_json``), or the
    whole answer (``as_json``)."""
    path = f"/graphs/{quote(name)}"
    graph = _call(api, "GET", path, as_json=as_json, query={"version": version})
    if as_json:
        typer.echo(json.dumps(graph, indent=2))
    elif spec_json:
        typer.echo(json.dumps(graph.get("spec"), indent=2, sort_keys=True))
    else:
        typer.echo(str(graph.get("mermaid", "")), nl=False)


# -- output ---------------------------------------------------------------------------------------


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table with a bold header and no borders; whole lines in a pipe or a file."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console(highlight=False)
    if not console.is_terminal:  # never wrapped at 80 columns for a script
        console.width = 1000
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _when(text: object) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-``."""
    if not isinstance(text, str):
        return "-"
    try:
        when = datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return text
    return f"{when:%Y-%m-%d %H:%M:%S}"
