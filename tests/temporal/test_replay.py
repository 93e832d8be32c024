"""Replay the recorded histories (``tests/histories/*.json``) with today's workflow code.

A change that makes a workflow issue different commands for the same history — a new, removed
or reordered step without ``workflow.patched()`` — would break every run open when it is
deployed; here it fails CI instead. After an intended change, re-record with
``python -m tests.histories.record`` (and guard the change for open runs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, Worker
from tests.histories.changed import AuditedGraphWorkflow, AuditedOrderWorkflow
from tests.histories.record import SCENARIOS

from belugaflow import Orchestrator
from belugaflow.graph import Registry
from belugaflow.temporal import graph_worker
from examples.order_processing import Store, build_order_graph
from examples.order_processing.workflow import order_worker

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """A recorded history; its file name is the workflow id."""
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def replayer_for(worker: Worker, workflows: list[type] | None = None) -> Replayer:
    """A replayer with ``worker``'s workflows (or ``workflows``) and its workflow settings —
    runner, sandbox passthrough, failure types — so it replays as that worker would."""
    config = worker.config()
    return Replayer(
        workflows=workflows if workflows is not None else config["workflows"],
        interceptors=config["interceptors"],
        workflow_runner=config["workflow_runner"],
        unsandboxed_workflow_runner=config["unsandboxed_workflow_runner"],
        workflow_failure_exception_types=config["workflow_failure_exception_types"],
        data_converter=worker.client.data_converter,
    )


@pytest.fixture
async def workers(temporal_client: Client, tmp_path: Path) -> dict[str, Worker]:
    """The project's workers, by the first word of a history's id; built, never started.
    ``named`` serves the order graph by name, as the example app's workers do."""
    orders = Orchestrator()
    build_order_graph(orders, Store.create(tmp_path / "graph-shop.db"))
    return {
        "order": order_worker(
            temporal_client, Store(tmp_path / "shop.db"), task_queue="replay-orders"
        ),
        "graph": graph_worker(temporal_client, task_queue="replay-graphs", registry=Registry()),
        "named": graph_worker(temporal_client, task_queue="replay-named", registry=orders.registry),
    }


def test_every_scenario_is_recorded() -> None:
    """Each scenario of the recorder has its history file, and no file is left over."""
    assert [path.stem for path in RECORDED] == sorted(SCENARIOS)


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path, workers: dict[str, Worker]) -> None:
    """Today's workflow code makes the same decisions as the code that recorded the history."""
    kind = path.stem.split("-")[0]
    await replayer_for(workers[kind]).replay_workflow(load(path))


# --- the replay test has teeth -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "changed"),
    [("order-completed", AuditedOrderWorkflow), ("graph-order-completed", AuditedGraphWorkflow)],
)
async def test_a_changed_workflow_fails_replay(
    history: str, changed: type, workers: dict[str, Worker]
) -> None:
    """A copy of the workflow with an activity inserted before the first one fails replay of
    the recorded history with a non-determinism error."""
    replayer = replayer_for(workers[history.split("-")[0]], [changed])
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES / f"{history}.json"))


async def test_a_graph_changed_without_a_new_version_fails_replay(
    temporal_client: Client,
) -> None:
    """A worker whose ``order-processing`` v1 differs from the one a run recorded (a node
    added at the start, the version left as it was) cannot continue that run: replay fails."""
    changed = Orchestrator()
    graph = changed.create_graph("order-processing", timeout=None)
    graph.add_node("audit", lambda s: {"audited": True})
    graph.add_wait("await_review", signal="review")
    graph.add_edge("audit", "await_review").set_entry_point("audit")
    graph.set_finish_point("await_review").compile()
    worker = graph_worker(temporal_client, task_queue="replay-changed", registry=changed.registry)
    with pytest.raises(workflow.NondeterminismError):
        await replayer_for(worker).replay_workflow(
            load(HISTORIES / "named-order-review-approved.json")
        )
