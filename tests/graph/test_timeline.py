"""A run's timeline from its in-process events, and the Mermaid drawing with node statuses."""

from __future__ import annotations

import asyncio

from belugaflow import Event, EventKind, Graph, RetryPolicy
from belugaflow.graph._mermaid import to_mermaid
from belugaflow.graph._timeline import Timeline
from belugaflow.testing import no_backoff


def review_graph() -> Graph:
    graph = Graph("review")
    graph.add_node("score", lambda s: {"score": 1})
    graph.add_node("approve", lambda s: {"ok": True}).add_node("reject", lambda s: None)
    graph.add_conditional_edges("score", lambda s: "yes", {"yes": "approve", "no": "reject"})
    return graph.set_entry_point("score").set_finish_point(["approve", "reject"])


def test_mermaid_colours_nodes_by_status() -> None:
    """One classDef per status used and one class line per status, in graph order; nodes and
    statuses it does not know are left alone."""
    spec = review_graph().compile().spec
    plain = spec.to_mermaid()
    assert to_mermaid(spec) == plain and to_mermaid(spec, {}) == plain
    drawn = to_mermaid(
        spec, {"reject": "skipped", "approve": "odd", "score": "completed", "x": "failed"}
    )
    assert drawn.startswith(plain)
    assert drawn[len(plain) :].splitlines() == [
        "    classDef completed fill:#d3f2dc,stroke:#2f9e44",
        "    classDef skipped fill:#f1f3f5,stroke:#adb5bd,stroke-dasharray:4 3",
        "    class n0 completed",
        "    class n2 skipped",
    ]


def test_events_give_rows_as_the_run_goes() -> None:
    """Between two attempts a node is retrying with the error; at the end every node has its
    outcome, attempts and times, and the route not taken is skipped."""
    calls = []

    def flaky(state: object) -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("slow upstream")
        return {"score": 1}

    graph = review_graph()
    graph.add_node("fetch", flaky, retry=RetryPolicy(max_attempts=2)).add_edge("fetch", "score")
    graph.set_entry_point("fetch")
    with no_backoff():
        events = list(graph.stream({}))
    spec = graph.compile().spec
    retry = next(i for i, e in enumerate(events) if e.kind is EventKind.NODE_RETRY_SCHEDULED)
    midway = Timeline.from_events(events[: retry + 1], spec)
    assert midway.status == "running" and midway.end is None
    assert midway.node("fetch").outcome == "retrying"
    assert midway.node("fetch").error == "TimeoutError: slow upstream"

    final = Timeline.from_events(events, spec)
    assert final.status == "completed" and final.run_id == events[0].run_id
    assert [(r.node, r.outcome, r.attempts) for r in final.nodes] == [
        ("fetch", "completed", 2),
        ("score", "completed", 1),
        ("approve", "completed", 1),
        ("reject", "skipped", 0),
    ]
    assert all(r.start is not None and r.end is not None for r in final.nodes[:3])
    assert final.to_dict()["nodes"][3] == {
        "node": "reject",
        "outcome": "skipped",
        "attempts": 0,
        "start": None,
        "end": None,
        "error": None,
    }


async def test_a_cancelled_run_cancels_what_was_open() -> None:
    """A node still waiting when its run is cancelled shows as cancelled."""
    events: list[Event] = []
    graph = Graph("hold", timeout=None, hooks=[events.append])
    graph.add_node("reserve", lambda s: None).add_wait("approval", signal="approve")
    graph.add_edge("reserve", "approval").set_entry_point("reserve").set_finish_point("approval")
    handle = await graph.start({})
    while not any(e.kind is EventKind.NODE_WAITING for e in events):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await handle.cancel()
    await asyncio.gather(handle.result(), return_exceptions=True)
    timeline = Timeline.from_events(events)
    assert timeline.status == "cancelled"
    assert [(r.node, r.outcome) for r in timeline.nodes] == [
        ("reserve", "completed"),
        ("approval", "cancelled"),
    ]
