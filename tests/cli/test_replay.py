"""``belugaflow replay``, run as a subprocess from the repository root, as a release pipeline
would: the recorded histories (``tests/histories``) against the example app and against apps
changed in ways that break them (``tests/cli/replay_apps.py``); a history written by the
official ``temporal workflow show --output json``; and ``--query`` / ``--save`` against the
session's dev server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from tests.cli.replay_apps import GREET, GREET_GRAPH, live
from tests.temporal.cli import Cli
from tests.temporal.fault_app import ROOT, belugaflow_command

from belugaflow.cli._output import ExitCode
from belugaflow.temporal import DevServer, TemporalEngine, create_worker

HISTORIES = ROOT / "tests" / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
EXAMPLE = "examples.order_processing.app:orch"
APPS = "tests.cli.replay_apps"


def replay(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``belugaflow replay ARGS`` from the repository root."""
    return subprocess.run(
        [*belugaflow_command(), "replay", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The result lines (``ok`` and ``FAIL``), without the summary."""
    return [line for line in done.stdout.splitlines() if line.startswith(("ok ", "FAIL "))]


def test_the_example_app_replays_every_recorded_history(tmp_path: Path) -> None:
    """The example app's worker serves all three kinds of recorded workflow: the hand-written
    OrderProcessingWorkflow, graphs by spec (belugaflow.graph) and the order graph by name."""
    done = replay("--app", EXAMPLE, HISTORIES, env={"BELUGAFLOW_ORDERS_DB": str(tmp_path / "s.db")})
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert sorted(lines(done)) == sorted(
        f"ok    {path.stem}  {kind}"
        for path in RECORDED
        for kind in [
            {"order": "OrderProcessingWorkflow", "graph": "belugaflow.graph"}.get(
                path.stem.split("-")[0], "order-processing"
            )
        ]
    )
    assert done.stdout.splitlines()[-1] == f"{len(RECORDED)} histories: {len(RECORDED)} ok"


def test_a_change_that_breaks_open_runs_fails_with_the_mismatch_and_a_hint() -> None:
    """An activity inserted before the first one, in a hand-written workflow and in a graph
    whose version stayed the same: each history says which event and command disagree."""
    done = replay(
        "--app",
        f"{APPS}:changed",
        HISTORIES / "order-completed.json",
        HISTORIES / "order-cancelled.json",
        HISTORIES / "named-order-review-approved.json",
        HISTORIES / "graph-order-completed.json",
    )
    assert done.returncode == ExitCode.NOT_REPLAYABLE, done.stdout + done.stderr
    mismatch = "[TMPRL1100] Nondeterminism error: Activity"
    assert lines(done) == [
        f"FAIL  order-completed  OrderProcessingWorkflow: {mismatch} type of scheduled event"
        " 'order.validate' does not match activity type of activity command 'order.audit'",
        f"FAIL  order-cancelled  OrderProcessingWorkflow: {mismatch} type of scheduled event"
        " 'order.validate' does not match activity type of activity command 'order.audit'",
        f"FAIL  named-order-review-approved  order-processing: {mismatch} id of scheduled event"
        " '1:validate' does not match activity id of activity command '1:audit'",
        "ok    graph-order-completed  belugaflow.graph",  # the spec travels with the run
    ]
    hints = [line.strip() for line in done.stdout.splitlines() if line.startswith("      hint:")]
    assert len(hints) == 2  # once per kind of workflow, not once per history
    assert "workflow.patched()" in hints[0]
    assert "new version of the graph" in hints[1]
    assert "old build" in hints[0] and "old build" in hints[1]
    assert done.stdout.splitlines()[-1] == "4 histories: 1 ok, 3 failed"
    assert "Traceback" not in done.stderr and "WARN" not in done.stderr, done.stderr


def test_what_the_app_cannot_replay_or_read_is_one_clear_line_each(tmp_path: Path) -> None:
    """A workflow type the app does not serve, a graph version it no longer registers, and
    files that are not histories: a FAIL line each, naming what is wrong, never a traceback."""
    (tmp_path / "cut.json").write_text('{"events": [', encoding="utf-8")
    (tmp_path / "other.json").write_text('{"name": "not a history"}', encoding="utf-8")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    done = replay(
        "--app",
        f"{APPS}:newer",
        HISTORIES / "order-completed.json",
        HISTORIES / "named-order-cancelled.json",
        tmp_path,
    )
    assert done.returncode == ExitCode.NOT_REPLAYABLE, done.stdout + done.stderr
    assert lines(done) == [
        "FAIL  order-completed  OrderProcessingWorkflow: the app serves no workflow type"
        " 'OrderProcessingWorkflow' (it serves: belugaflow.graph, order-processing)",
        "FAIL  named-order-cancelled  order-processing: the workflow task failed: RuntimeError:"
        " run of 'order-processing' started on version 1, and this worker serves versions 2;"
        " keep a version registered until its runs have ended",
        f"FAIL  {tmp_path / 'binary.json'}: cannot read it: 'utf-8' codec can't decode byte"
        " 0xff in position 0: invalid start byte",
        f"FAIL  {tmp_path / 'cut.json'}: not JSON: Expecting value: line 1 column 13 (char 12)",
        f"FAIL  {tmp_path / 'other.json'}: not a workflow history: History does not have"
        " iterable 'events'",
    ]
    assert done.stdout.splitlines()[-1] == "5 histories: 0 ok, 5 failed"
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "error: give history files or directories to replay, or --query"),
        (["--save", "out", str(HISTORIES)], "error: --save writes the histories that --query"),
        (["tests/cli"], "error: directory 'tests/cli' holds no *.json file"),
        (["no-such.json"], "error: no-such.json: no such file or directory"),
    ],
    ids=["nothing", "save-without-query", "empty-dir", "missing-file"],
)
def test_nothing_to_replay_is_a_usage_error(args: list[str], says: str) -> None:
    done = replay("--app", f"{APPS}:live", *args)
    assert done.returncode == ExitCode.USAGE
    assert says in done.stderr


# --- histories of real runs: the official CLI's JSON, and --query / --save ---------------------


async def _greet_runs(client: Client, queue: str) -> tuple[str, str]:
    """One completed run and one waiting (running) run of the live app's graph, by name, on
    ``queue``; their ids, once the server's visibility lists both."""
    engine = TemporalEngine(client, task_queue=queue, registry=live.registry)
    done_id, open_id = f"{queue}-done", f"{queue}-open"
    done = await engine.start(GREET_GRAPH, {"name": "ada"}, id=done_id)
    await engine.start(GREET_GRAPH, {"name": "bob"}, id=open_id)
    await done.signal("go", True)
    await done.result()
    deadline = time.monotonic() + 20
    query = f"TaskQueue='{queue}'"
    while len([run async for run in client.list_workflows(query)]) < 2:
        assert time.monotonic() < deadline, "the runs did not show in visibility"
        await asyncio.sleep(0.1)
    return done_id, open_id


async def test_runs_from_the_server_replay_fetched_saved_and_shown_by_the_official_cli(
    temporal_server: DevServer, temporal_client: Client, tmp_path: Path
) -> None:
    queue = f"replay-{uuid.uuid4().hex[:8]}"
    worker = create_worker(temporal_client, live, task_queue=queue)
    async with worker:
        done_id, open_id = await _greet_runs(temporal_client, queue)
    target = ["--address", temporal_server.address, "--namespace", temporal_server.namespace]
    app = ["--app", f"{APPS}:live"]
    try:
        shown = tmp_path / "shown" / "history.json"  # a stem that is not the workflow id
        shown.parent.mkdir()
        cli = Cli(temporal_server)
        shown.write_text(cli("workflow", "show", "-w", done_id, "--output", "json"), "utf-8")
        offline = await asyncio.to_thread(replay, *app, shown)
        assert lines(offline) == [f"ok    {done_id}  {GREET}"], offline.stdout + offline.stderr

        saved = tmp_path / "saved"
        query = f"TaskQueue='{queue}'"
        fetched = await asyncio.to_thread(replay, *app, *target, "--query", query, "--save", saved)
        assert fetched.returncode == ExitCode.OK, fetched.stdout + fetched.stderr
        expected = sorted(f"ok    {id}  {GREET}" for id in (done_id, open_id))
        assert sorted(lines(fetched)) == expected
        assert f"saved 2 histories to {saved}" in fetched.stderr
        assert sorted(p.name for p in saved.iterdir()) == sorted(
            f"{id}.json" for id in (done_id, open_id)
        )

        again = await asyncio.to_thread(replay, *app, saved)  # offline: no --address
        assert again.returncode == ExitCode.OK, again.stdout + again.stderr
        assert sorted(lines(again)) == expected

        newest = await asyncio.to_thread(replay, *app, *target, "--query", query, "--limit", "1")
        assert lines(newest) == [f"ok    {open_id}  {GREET}"], newest.stdout + newest.stderr
        assert f"stopped at --limit 1: more runs may match {query!r}" in newest.stderr

        none = await asyncio.to_thread(replay, *app, *target, "--query", f"WorkflowId='{queue}'")
        assert none.returncode == ExitCode.OK, none.stdout + none.stderr
        assert none.stdout == f"no run matches \"WorkflowId='{queue}'\": nothing to replay\n"

        bad = await asyncio.to_thread(replay, *app, *target, "--query", f"{query} AND 1=2")
        assert bad.returncode == ExitCode.USAGE, bad.stdout + bad.stderr
        assert f"{temporal_server.address} (namespace 'default') refused the query" in bad.stderr
        assert "invalid query" in bad.stderr
    finally:
        await temporal_client.get_workflow_handle(open_id).terminate("test over")
