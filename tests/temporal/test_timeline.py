"""A run's timeline: read from Temporal history on a real dev server (and by
``belugaflow workflows show``), and from the events of the same graph run in process — the same
rows and outcomes: a node retried once, a route not taken, a wait, a node that parks its run."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory
from tests.temporal import timeline_app
from tests.temporal.fault_app import belugaflow_command

from belugaflow import Event, Graph, NodeFailedError, Orchestrator, RunHandle
from belugaflow.graph._timeline import Timeline
from belugaflow.temporal import DevServer, TemporalEngine, graph_worker
from belugaflow.temporal._timeline import fetch_timeline, timeline_from_history
from examples.order_processing.db import Store
from examples.order_processing.graph import build_order_graph

WAIT = 20.0
ROOT = Path(__file__).resolve().parents[2]
HISTORIES = ROOT / "tests" / "histories"

Rows = list[tuple[str, str, int, str | None]]


def rows(timeline: Timeline) -> Rows:
    return [(r.node, r.outcome, r.attempts, r.error) for r in timeline.nodes]


def outcome(timeline: Timeline, node: str) -> str | None:
    return next((r.outcome for r in timeline.nodes if r.node == node), None)


async def until(read: Callable[[], Awaitable[Timeline]], node: str, wanted: str) -> Timeline:
    """The first timeline ``read`` gives with ``node`` in outcome ``wanted``."""
    async with asyncio.timeout(WAIT):
        while outcome(timeline := await read(), node) != wanted:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return timeline


class Engine:
    """Starts the timeline app's graphs on one engine and reads a run's timeline back."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.queue = f"timeline-{uuid.uuid4().hex[:8]}"
        self.events: dict[str, list[Event]] = {}

    async def start(self, graph: Graph, order: str) -> tuple[RunHandle, Callable[[], Any]]:
        """Start ``graph`` on ``{"order": order}``; returns the handle and a timeline reader."""
        if self.name == "local":
            events: list[Event] = []
            local = {g.name: g for g in timeline_app.graphs([events.append])}[graph.name]
            handle = await local.start({"order": order})
            spec = local.compile().spec

            async def read_local() -> Timeline:
                return Timeline.from_events(list(events), spec)

            return handle, read_local
        engine = TemporalEngine(
            self.client, task_queue=self.queue, registry=timeline_app.orch.registry
        )
        durable = await engine.start(graph, {"order": order}, id=f"{order}-{uuid.uuid4().hex[:6]}")
        graphs = timeline_app.orch.registry.graphs

        async def read_durable() -> Timeline:
            return await fetch_timeline(self.client, durable.id, graphs=graphs)

        return durable, read_durable


@pytest.fixture
async def temporal(temporal_client: Client) -> AsyncIterator[Engine]:
    engine = Engine("temporal", temporal_client)
    worker = graph_worker(
        temporal_client, task_queue=engine.queue, registry=timeline_app.orch.registry
    )
    async with worker:
        yield engine


async def drive(engine: Engine, order: str) -> tuple[str, list[Timeline]]:
    """One run of ``timeline``: wait for its review, approve, let ``pay`` park, skip it. Returns
    the run's id and its timeline while waiting, while parked and at the end."""
    handle, read = await engine.start(timeline_app.timeline, order)
    waiting = await until(read, "review", "waiting")
    await handle.signal("review", None)
    parked = await until(read, "pay", "parked")
    await handle.resolve("pay", "skip", {"paid": "by hand"})
    assert (await handle.result())["paid"] == "by hand"
    return handle.id, [waiting, parked, await read()]


FINAL: Rows = [
    ("fetch", "completed", 2, "ConnectionError: gateway reset"),
    ("ship", "completed", 1, None),
    ("review", "completed", 0, None),
    ("pay", "skipped", 1, "NonRetryableError: card declined"),  # by the operator
    ("refund", "skipped", 0, None),  # by the route
]


async def test_a_durable_runs_timeline_matches_the_same_run_in_process(
    temporal: Engine, temporal_client: Client, temporal_server: DevServer
) -> None:
    """History gives each node its attempts, outcome and last error as the run goes — waiting,
    parked — and at its end the rows the in-process events give; the CLI prints the same."""
    run_id, (waiting, parked, final) = await drive(temporal, f"tl-{uuid.uuid4().hex[:6]}")
    assert waiting.status == "running" and waiting.graph == "timeline"
    assert rows(waiting)[:3] == [
        ("fetch", "completed", 2, "ConnectionError: gateway reset"),
        ("ship", "completed", 1, None),
        ("review", "waiting", 0, None),
    ]
    assert parked.node("pay").outcome == "parked" and parked.node("pay").end is not None
    assert parked.node("review").outcome == "completed"
    assert final.status == "completed" and final.end is not None
    assert rows(final) == FINAL
    fetched = final.node("fetch")
    assert fetched.start is not None and fetched.end is not None and fetched.start < fetched.end
    mermaid = final.to_mermaid()
    assert mermaid is not None and "class n0,n1,n3 completed" in mermaid

    local = Engine("local", temporal_client)
    _, (_, local_parked, local_final) = await drive(local, f"local-{run_id}")
    assert rows(local_final) == FINAL
    assert outcome(local_parked, "pay") == "parked" and local_final.to_mermaid() == mermaid

    # The command line, as a script would run it: with the app it draws the graph run by name.
    target = ["--address", temporal_server.address, "--namespace", temporal_server.namespace]
    app = ["--app", "tests.temporal.timeline_app:orch"]
    as_json, text, unknown = await asyncio.gather(
        belugaflow("workflows", "show", run_id, *target, *app, "--json"),
        belugaflow("workflows", "show", run_id, *target),
        belugaflow("workflows", "show", "no-such-run", *target),
    )
    assert as_json.code == 0, as_json.err
    shown = json.loads(as_json.out)
    assert [(n["node"], n["outcome"], n["attempts"], n["error"]) for n in shown["nodes"]] == FINAL
    assert shown["status"] == "completed" and shown["mermaid"] == mermaid
    assert text.code == 0, text.err
    assert f"run {run_id} of timeline: completed" in text.out
    # Without the app, a run by name has no graph: its activities, no wait, no skip, no drawing.
    assert [line.split()[:3] for line in text.out.splitlines()[3:]] == [
        ["NODE", "OUTCOME", "ATTEMPTS"],
        ["fetch", "completed", "2"],
        ["ship", "completed", "1"],
        ["pay", "skipped", "1"],
    ]
    assert "--app" in text.err
    assert unknown.code == 1 and not unknown.out
    assert unknown.err.strip() == (
        f"error: no workflow 'no-such-run' in namespace {temporal_server.namespace!r}"
        f" at {temporal_server.address}"
    )


@pytest.mark.parametrize("name", ["local", "temporal"])
async def test_a_failed_run_shows_the_node_that_failed_it(
    name: str, temporal: Engine, temporal_client: Client
) -> None:
    """A declined charge fails the run after one attempt, on either engine."""
    engine = temporal if name == "temporal" else Engine("local", temporal_client)
    handle, read = await engine.start(timeline_app.declined, f"declined-{uuid.uuid4().hex[:6]}")
    with pytest.raises(NodeFailedError):
        await handle.result()
    timeline = await read()
    assert timeline.status == "failed"
    assert rows(timeline) == [("charge", "failed", 1, "NonRetryableError: card declined")]


def test_a_hand_written_workflow_shows_its_activities() -> None:
    """A workflow of plain activities: one row per activity type, in order, and no drawing."""
    path = HISTORIES / "order-cancelled.json"
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    timeline = timeline_from_history(history)
    assert (timeline.graph, timeline.status) == ("OrderProcessingWorkflow", "cancelled")
    assert [(r.node, r.outcome, r.attempts) for r in timeline.nodes] == [
        ("order.validate", "completed", 1),
        ("order.check_inventory", "completed", 1),
        ("order.decide", "completed", 1),
        ("order.release", "completed", 1),  # the compensation after the cancel
    ]
    assert timeline.to_mermaid() is None


class Done:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


async def belugaflow(*args: str) -> Done:
    """The ``belugaflow`` console script, run from the repository root."""
    process = await asyncio.create_subprocess_exec(
        *belugaflow_command(),
        *args,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def test_a_wait_the_route_went_past_is_skipped_not_waited(
    temporal_client: Client, tmp_path: Path
) -> None:
    """The order graph: an order the rule approves never waits for review, and its timeline
    says so (history shows a wait only by the signal or timeout that ended it)."""
    orch = Orchestrator(metrics=False)
    graph = build_order_graph(orch, Store.create(tmp_path / "orders.db"))
    queue = f"timeline-{uuid.uuid4().hex[:8]}"
    order = {"order_id": "t-1", "product_id": "prod-1", "quantity": 1, "review_threshold": 10**6}
    async with graph_worker(temporal_client, task_queue=queue, registry=orch.registry):
        engine = TemporalEngine(temporal_client, task_queue=queue, registry=orch.registry)
        run = await engine.start(graph, order, id=f"t-1-{uuid.uuid4().hex[:6]}")
        assert (await run.result())["status"] == "completed"
    timeline = await fetch_timeline(temporal_client, run.id, graphs=orch.registry.graphs)
    assert outcome(timeline, "await_review") == "skipped"
    assert outcome(timeline, "process_payment") == "completed"
