"""``belugaflow replay``: check that an app's code still replays recorded workflow histories."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from belugaflow.cli._output import ExitCode, fail
from belugaflow.cli._target import TargetError, load_orchestrator
from belugaflow.cli._worker import AddressOption, AppOption, NamespaceOption

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHistory
    from temporalio.worker import Replayer

    from belugaflow import Orchestrator
    from belugaflow.temporal._replay import ServedTypes

__all__ = ["replay"]

DEFAULT_LIMIT = 100

OLD_BUILD = "let workers of the old build finish those runs (docs/temporal.md#versioning)"
HINTS = {
    "hand-written": "guard the change with workflow.patched(), so that runs started before it"
    f" keep the old path, or {OLD_BUILD}",
    "by name": "make the change a new version of the graph (create_graph(name, version=N+1))"
    f" and keep the old version registered while its runs are open, or {OLD_BUILD}",
    "by spec": "such a run carries its graph, so belugaflow's GraphWorkflow itself replays"
    f" differently (a belugaflow upgrade?): {OLD_BUILD}",
}
"""What to do about a non-deterministic change, by the kind of workflow it broke."""


def replay(
    app: AppOption,
    histories: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="HISTORY_FILE_OR_DIR",
            help="History JSON files (temporal workflow show -w ID --output json > h.json);"
            " a directory means every *.json in it.",
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            help="Also replay the runs that match this visibility query on the app's Temporal"
            " server, e.g. \"ExecutionStatus='Running'\".",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="At most this many runs of --query (newest first).")
    ] = DEFAULT_LIMIT,
    save: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Write each history --query fetched to DIR/<workflow id>.json, to replay later.",
        ),
    ] = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Replay workflow histories with the app's code, as its worker would run them.

    Prints one line per history (ok, or FAIL and why) and exits 0 if every history replays,
    12 if any does not (a change that would break the runs still open when it is deployed).
    """
    files = _expand(histories or [])
    if not files and query is None:
        fail("give history files or directories to replay, or --query", ExitCode.USAGE)
    if save is not None and query is None:
        fail("--save writes the histories that --query fetches; give --query", ExitCode.USAGE)
    try:
        orch = load_orchestrator(app, search_dir=os.getcwd())
    except (TargetError, ValueError) as error:
        fail(str(error))
    orch.temporal_address = address or orch.temporal_address
    orch.temporal_namespace = namespace or orch.temporal_namespace
    try:
        import belugaflow.temporal  # noqa: F401  (says which extra to install)
    except ImportError as error:
        fail(str(error))
    # The SDK logs each failed workflow task with its traceback; the FAIL lines say it all.
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    report = Report(typer.echo)
    try:
        asyncio.run(_replay_all(orch, files, query, limit, save, report))
    except _Stop as stop:
        _error(str(stop))
        code = stop.code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except Exception as error:  # e.g. the app's workflows are invalid: no worker can be built
        _error(f"replay stopped: {type(error).__name__}: {error}")
        code = ExitCode.INVALID
    else:
        code = report.finish(query)
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK's native runtime can crash while the interpreter shuts down
    # (sdk-python#300), so once it has started, leave without running finalizers.
    os._exit(code)


def _error(message: str) -> None:
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {message}", err=True)


def _expand(paths: Sequence[Path]) -> list[Path]:
    """The files to replay: each file given, and every ``*.json`` of each directory."""
    files: list[Path] = []
    for path in paths:
        # Checked here, not as typer parses: a line naming files (docs/cli.md's) still parses.
        if not path.exists():
            fail(f"{path}: no such file or directory", ExitCode.USAGE)
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(path.glob("*.json"))
        if not found:
            fail(f"directory {str(path)!r} holds no *.json file", ExitCode.USAGE)
        files.extend(found)
    return files


class _Stop(Exception):
    """The check could not run (the server cannot be reached or refused the query)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.INVALID) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Report:
    """Prints a line per history and counts them."""

    echo: Callable[[str], object]
    ok: int = 0
    failed: int = 0
    hinted: set[str] = field(default_factory=set)

    def passed(self, history: WorkflowHistory, type_name: str) -> None:
        self.ok += 1
        self.echo(f"ok    {history.workflow_id}  {type_name}")

    def fail(self, subject: str, reason: str, hint: str | None = None) -> None:
        self.failed += 1
        self.echo(f"FAIL  {subject}: {reason}")
        if hint is not None and hint not in self.hinted:  # once is enough to say it
            self.hinted.add(hint)
            self.echo(f"      hint: {hint}")

    def finish(self, query: str | None) -> ExitCode:
        total = self.ok + self.failed
        if total == 0:
            self.echo(f"no run matches {query!r}: nothing to replay")
            return ExitCode.OK
        noun = "history" if total == 1 else "histories"
        failed = f", {self.failed} failed" if self.failed else ""
        self.echo(f"{total} {noun}: {self.ok} ok{failed}")
        return ExitCode.NOT_REPLAYABLE if self.failed else ExitCode.OK


async def _replay_all(
    orch: Orchestrator,
    files: Sequence[Path],
    query: str | None,
    limit: int,
    save: Path | None,
    report: Report,
) -> None:
    from belugaflow.temporal import TemporalConnectionError
    from belugaflow.temporal._replay import read_history, served_types

    async with _private_client(orch) as private:
        replayer = _replayer(orch, private)
        served = served_types(orch, replayer)
        for path in files:
            try:
                history = read_history(path)
            except ValueError as error:
                report.fail(str(path), str(error).removeprefix(f"{path}: "))
                continue
            await _replay_one(replayer, served, history, report)
        if query is None:
            return
        try:
            client = await orch.client()
        except TemporalConnectionError as error:
            raise _Stop(str(error)) from None
        saved = _Saver(save) if save is not None else None
        async for history in _fetch(client, query, limit):
            if saved is not None:
                saved.write(history)
            await _replay_one(replayer, served, history, report)
        if saved is not None and saved.count:
            typer.echo(f"saved {saved.count} histories to {save}", err=True)


@contextlib.asynccontextmanager
async def _private_client(orch: Orchestrator) -> AsyncIterator[Client]:
    """A client like the orchestrator's (its data converter and tracing), of a throwaway
    in-memory dev server that lives as long as the check.

    Temporal's ``Worker``, which the replayer is made from to have exactly its settings, needs
    a connected client, but replaying needs no server: with a private one, a build is checked
    without a cluster or its credentials, and no worker of the check ever shows in the app's
    namespace (``--query`` only lists and fetches there).
    """
    from temporalio.client import Client

    from belugaflow.temporal import DevServer, DevServerError, TemporalBinaryNotFoundError

    try:
        server = await DevServer().start()
    except (DevServerError, TemporalBinaryNotFoundError) as error:
        raise _Stop(f"cannot start the in-memory dev server that replay needs: {error}") from None
    try:
        interceptors = []
        if orch.tracing is not None:  # as orch.client() connects
            from belugaflow.temporal._tracing import client_interceptors

            interceptors = client_interceptors(orch.tracing)
        yield await Client.connect(
            server.address,
            namespace=server.namespace,
            data_converter=orch.data_converter,
            interceptors=interceptors,
        )
    finally:
        await server.stop()


def _replayer(orch: Orchestrator, client: Client) -> Replayer:
    from temporalio.runtime import Runtime, TelemetryConfig

    from belugaflow.temporal import replayer

    # Its own runtime, without logging: the core logs every failed workflow task as a warning.
    quiet = Runtime(telemetry=TelemetryConfig(logging=None))
    return replayer(orch, client, runtime=quiet, namespace=orch.temporal_namespace)


async def _replay_one(
    replayer: Replayer, served: ServedTypes, history: WorkflowHistory, report: Report
) -> None:
    from temporalio import workflow

    from belugaflow.temporal._replay import describe_failure, workflow_type

    type_name = workflow_type(history)
    subject = f"{history.workflow_id}  {type_name}"
    if type_name not in served:
        serves = ", ".join(served) or "none"
        report.fail(subject, f"the app serves no workflow type {type_name!r} (it serves: {serves})")
        return
    try:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    except Exception as error:  # the replay worker itself broke; say so and go on
        report.fail(subject, f"replay did not run: {type(error).__name__}: {error}")
        return
    failure = result.replay_failure
    if failure is None:
        report.passed(history, type_name)
        return
    hint = None
    if isinstance(failure, workflow.NondeterminismError):
        kind = "by spec" if type_name == "belugaflow.graph" else "hand-written"
        hint = HINTS["by name" if type_name in served.graphs else kind]
    report.fail(subject, describe_failure(failure), hint)


async def _fetch(client: Client, query: str, limit: int) -> AsyncIterator[WorkflowHistory]:
    """The histories of the runs matching ``query``, newest first, at most ``limit``."""
    from temporalio.service import RPCError, RPCStatusCode

    count = 0
    try:
        async for history in client.list_workflows(query, limit=limit).map_histories():
            count += 1
            yield history
    except RPCError as error:
        server = f"{client.service_client.config.target_host} (namespace {client.namespace!r})"
        if error.status == RPCStatusCode.INVALID_ARGUMENT:  # the query itself is wrong
            refused = f"{server} refused the query {query!r}: {error.message}"
            raise _Stop(refused, ExitCode.USAGE) from None
        raise _Stop(f"cannot fetch the runs of {query!r} from {server}: {error.message}") from None
    if count == limit:
        typer.echo(f"stopped at --limit {limit}: more runs may match {query!r}", err=True)


class _Saver:
    """Writes histories to ``DIR/<workflow id>.json`` as ``temporal workflow show --output
    json`` would (``read_history`` reads them back)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self._names: set[str] = set()

    def write(self, history: WorkflowHistory) -> None:
        name = _UNSAFE.sub("_", history.workflow_id)
        if name in self._names:  # another run of the same workflow id
            name = f"{name}.{history.run_id}"
        self._names.add(name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{name}.json").write_text(history.to_json() + "\n", "utf-8")
        except OSError as error:
            where = f"{history.workflow_id!r} in {self.directory}"
            raise _Stop(f"cannot save {where}: {error.strerror or error}") from None
        self.count += 1


_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")
