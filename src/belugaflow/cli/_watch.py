"""Watching a run from the shell: its events as they happen, then its result.

:func:`follow` reads ``GET /workflows/{id}/events`` (see :meth:`~._api.Api.events`) and shows
each event: as one plain line each (``HH:MM:SS.mmm  NODE  what happened``) when the output is
not a terminal, or as a live table of the nodes on a terminal. :func:`await_result` long-polls
``GET /workflows/{id}/result``, and :func:`report_result` prints the answer and leaves with the
exit code of the run's outcome.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TextIO

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from belugaflow.cli._api import Api, ApiError, Reply, SseMessage, quote
from belugaflow.cli._output import ExitCode, fail

__all__ = [
    "MAX_POLL",
    "api_fail",
    "await_result",
    "event_line",
    "follow",
    "report_result",
    "watch_and_report",
]

MAX_POLL = 60.0
"""Longest ``?wait=`` the API takes (``belugaflow.server.MAX_WAIT``)."""

_STYLES = {
    "completed": "green",
    "failed": "bold red",
    "retrying": "yellow",
    "cancelled": "magenta",
    "terminated": "magenta",
    "timed_out": "red",
    "received": "cyan",
}


def api_fail(error: ApiError, as_json: bool) -> NoReturn:
    """Report ``error`` (one line on stderr; with ``--json`` the API's problem on stdout too)
    and exit with its code."""
    if as_json and error.problem is not None:
        typer.echo(json.dumps(error.problem, indent=2))
    fail(str(error), error.code)


def _clock(text: object) -> str:
    if not isinstance(text, str):
        return " " * 12
    try:
        when = datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return text[:12].ljust(12)
    return f"{when:%H:%M:%S}.{when.microsecond // 1000:03d}"


def _describe(message: SseMessage) -> tuple[str, str, str]:
    """``(subject, status, detail)`` of an event: what it is about (a node, a signal, the run),
    its new state, and more words (the attempt, the error, the signal's value)."""
    data = message.data
    kind = message.event.removeprefix("belugaflow.")
    node = str(data.get("node", "?"))
    attempt = data.get("attempt")
    error = data.get("error")
    if kind == "run.started":
        return "run", "started", str(data.get("type", ""))
    if kind.startswith("run."):
        status = kind.removeprefix("run.")
        detail = error or data.get("reason") or ""
        return "run", status, str(detail)
    if kind == "signal.received":
        value = json.dumps(data.get("value"), separators=(", ", ": "))
        return f"signal {data.get('signal')}", "received", value
    if kind == "node.retry_scheduled":
        return node, "retrying", f"attempt {attempt} failed: {error}"
    if kind.startswith("node."):
        status = kind.removeprefix("node.")
        more = [f"attempt {attempt}"] if isinstance(attempt, int) and attempt > 1 else []
        if error:
            more.append(str(error))
        return node, status, ": ".join(more)
    return node if "node" in data else "run", kind, ""


def event_line(message: SseMessage) -> str:
    """One plain line: ``HH:MM:SS.mmm  subject  status  detail`` (UTC)."""
    subject, status, detail = _describe(message)
    line = f"{_clock(message.data.get('time'))}  {subject:<20} {status:<10} {detail}"
    return line.rstrip()


class _Plain:
    """One line per event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, message: SseMessage) -> None:
        print(event_line(message), file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(f"  ({text})", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _Live:
    """A table of the run's nodes, redrawn as events come; left on screen at the end."""

    def __init__(self, console: Console, title: str) -> None:
        self.title = title
        self.rows: dict[str, tuple[str, int | None, str, str]] = {}
        """subject -> (status, attempts, time, detail)"""
        self.spinners: dict[str, Spinner] = {}
        self.status = "running"
        self.console = console
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)
        self.live.start()

    def show(self, message: SseMessage) -> None:
        subject, status, detail = _describe(message)
        when = _clock(message.data.get("time"))
        if subject == "run":
            self.status = status if status != "started" else "running"
        else:
            attempt = message.data.get("attempt")
            _, attempts, _, _ = self.rows.get(subject, ("", None, "", ""))
            if isinstance(attempt, int):
                attempts = max(attempts or 0, attempt)
            self.rows[subject] = (status, attempts, when, detail)
        self.live.update(self._render())

    def note(self, text: str) -> None:
        self.console.print(Text(f"({text})", style="dim"))

    def close(self) -> None:
        self.live.update(self._render())
        self.live.stop()

    def _render(self) -> RenderableType:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("NODE", "STATUS", "ATTEMPTS", "AT (UTC)", "DETAIL"):
            table.add_column(column, no_wrap=column != "DETAIL", overflow="fold")
        for subject, (status, attempts, when, detail) in self.rows.items():
            shown: RenderableType
            if status in ("scheduled", "started"):
                spinner = self.spinners.setdefault(subject, Spinner("dots", style="cyan"))
                spinner.text = Text("running")
                shown = spinner
            else:
                shown = Text(status, style=_STYLES.get(status, ""))
            table.add_row(subject, shown, str(attempts or ""), when, detail)
        footer: RenderableType
        if self.status == "running":
            footer = Spinner("dots", text=Text(f"{self.title}: running (Ctrl-C stops watching)"))
        else:
            footer = Text(f"{self.title}: {self.status}", style=_STYLES.get(self.status, "bold"))
        return Group(table, footer)


def follow(api: Api, run: dict[str, Any], *, to_stderr: bool = False) -> None:
    """Show the events of ``run`` (the API's answer to its start) until it ends: a live table
    on a terminal, else plain lines (on stderr when ``to_stderr``, so stdout keeps the JSON).

    Raises:
        ApiError: The stream could not be followed.
    """
    out = sys.stderr if to_stderr else sys.stdout
    console = Console(file=out, highlight=False)
    title = f"{run['id']} ({run.get('type', '?')})"
    view: _Plain | _Live = _Live(console, title) if console.is_terminal else _Plain(out)
    api.on_reconnect = view.note
    try:
        for message in api.events(str(run["id"])):
            view.show(message)
    except KeyboardInterrupt:
        view.close()
        typer.echo(
            f"stopped watching; the run goes on: belugaflow workflows result {run['id']}"
            f" --wait {MAX_POLL:g} --api {api.url}",
            err=True,
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        api.on_reconnect = None
    view.close()


def await_result(api: Api, workflow_id: str, wait: float | None) -> Reply:
    """``GET /workflows/{id}/result``, in long polls of at most :data:`MAX_POLL` seconds,
    until the run ends or ``wait`` seconds have passed (None: until it ends). The 200 (ended,
    completed) or 202 (still running) answer.

    Raises:
        ApiError: The run ended otherwise (409, with the run's error), or the request failed.
    """
    path = f"/workflows/{quote(workflow_id)}/result"
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        left = MAX_POLL if deadline is None else max(0.0, deadline - time.monotonic())
        poll = min(MAX_POLL, left)
        reply = api.call("GET", path, query={"wait": f"{poll:g}"}, wait=poll)
        if reply.status != 202:
            return reply
        if deadline is not None and time.monotonic() >= deadline:
            return reply


def report_result(
    reply: Reply, workflow_id: str, *, as_json: bool, echo: Callable[[str], None] = typer.echo
) -> NoReturn:
    """Print a result answer — the result's JSON, or with ``as_json`` the API's answer — and
    exit: 0 completed, :attr:`~ExitCode.RUNNING` (a line on stderr) still running."""
    body = reply.body if isinstance(reply.body, dict) else {}
    if as_json:
        echo(json.dumps(reply.body, indent=2))
    if reply.status == 202:
        typer.echo(f"workflow {workflow_id!r} is still running", err=True)
        raise typer.Exit(ExitCode.RUNNING)
    if not as_json:
        echo(json.dumps(body.get("result"), indent=2))
    raise typer.Exit(ExitCode.OK)


def watch_and_report(api: Api, run: dict[str, Any], *, as_json: bool) -> NoReturn:
    """Follow ``run`` until it ends, then print its result and exit with its outcome's
    code."""
    try:
        follow(api, run, to_stderr=as_json)
        reply = await_result(api, str(run["id"]), None)
    except ApiError as error:
        api_fail(error, as_json)
    report_result(reply, str(run["id"]), as_json=as_json)
