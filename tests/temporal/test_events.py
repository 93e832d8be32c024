"""Durable runs report to hooks like local ones: the worker's hooks (an orchestrator's, through
``run_worker``) see every run and node event once, even when the workflow replays its history."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from temporalio.client import Client

from belugaflow import Event, EventKind, Graph, Orchestrator
from belugaflow.temporal import DevServer, run_worker
from belugaflow.temporal._engine import TemporalEngine, graph_worker


def routed_graph(orch: Orchestrator | None = None) -> Graph:
    graph = orch.create_graph("routed") if orch else Graph("routed")
    graph.add_node("a", lambda s: {"a": 1}).add_node("b", lambda s: {"b": 1})
    graph.add_node("c", lambda s: {"c": 1}).add_node("d", lambda s: {"d": 1})
    graph.add_edge("a", "b").add_conditional_edges("b", lambda s: "d", ["c", "d"])
    return graph.set_entry_point("a").set_finish_point(["c", "d"])


async def test_events_are_emitted_once_though_the_workflow_replays(
    temporal_client: Client,
) -> None:
    """With no workflow cache, every workflow task replays the run from its start; the run's
    start, its skipped node and its end are still reported once each."""
    events: list[Event] = []
    graph = routed_graph()
    queue = f"events-{uuid.uuid4().hex[:8]}"
    worker = graph_worker(
        temporal_client,
        task_queue=queue,
        registry=graph.registry,
        hooks=[events.append],
        max_cached_workflows=0,
    )
    async with worker:
        state = await TemporalEngine(temporal_client, task_queue=queue).run(graph, {})
    assert state == {"a": 1, "b": 1, "d": 1}
    counts = Counter((event.kind, event.node) for event in events)
    assert counts[EventKind.RUN_STARTED, None] == 1
    assert counts[EventKind.NODE_SKIPPED, "c"] == 1
    assert counts[EventKind.RUN_COMPLETED, None] == 1
    assert [counts[EventKind.NODE_COMPLETED, n] for n in "abd"] == [1, 1, 1]


async def test_an_orchestrators_hooks_see_the_runs_its_worker_serves(
    temporal_server: DevServer,
) -> None:
    """``run_worker(orch)`` hands the orchestrator's hooks to the worker: a durable run through
    ``orch.run(..., engine="temporal")`` reaches them, stamped with the workflow's id."""
    events: list[Event] = []
    orch = Orchestrator(
        workflow_task_queue=f"events-{uuid.uuid4().hex[:8]}",
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
        hooks=[events.append],
    )
    graph = routed_graph(orch)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    try:
        await orch.run(graph, {}, engine="temporal")
    finally:
        stop.set()
        await worker
    kinds = [event.kind for event in events]
    assert kinds[0] is EventKind.RUN_STARTED and kinds[-1] is EventKind.RUN_COMPLETED
    (run_id,) = {event.run_id for event in events}
    assert run_id.startswith("routed-")
    durations: dict[str, Any] = {e.node: e.duration for e in events if e.node and e.duration}
    assert set(durations) == {"a", "b", "d"}
