"""Memory on Temporal, with real worker processes sharing one SQLite memory file: what the
first node saves, the second node reads on another worker after the first worker is killed
(SIGKILL); an attempt that failed after saving is retried without saving twice; and the memory
outlives every worker that wrote it.

The app is ``tests/memory/durable_app.py`` (``first → second``, both reading the customer's
memory); workers run it as ``belugaflow worker --app tests.memory.durable_app:orch``.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.memory.durable_app import (
    CONTROL_ENV,
    MEMORY_ENV,
    build_graph,
    marks,
    open_memory,
)
from tests.temporal.fault_app import StartWorker, worker_pool

from belugaflow import Graph, Orchestrator
from belugaflow.memory import VectorMemory
from belugaflow.temporal import DevServer

APP = "tests.memory.durable_app:orch"
WAIT = 60.0  # seconds: a bound for what a test awaits (a killed worker's node waits out the
# heartbeat timeout, then a workflow task waits out the dead worker's sticky queue)


@pytest.fixture
def memory_db(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture
def control(tmp_path: Path) -> Path:
    path = tmp_path / "control"
    path.mkdir()
    return path


@pytest.fixture
def workers(
    temporal_server: DevServer, tmp_path: Path, memory_db: Path, control: Path
) -> Iterator[StartWorker]:
    """Worker processes of the app, on one task queue, sharing the memory file."""
    with worker_pool(
        APP,
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=f"memory-{uuid.uuid4().hex[:8]}",
        logs=tmp_path,
        env={MEMORY_ENV: str(memory_db), CONTROL_ENV: str(control)},
    ) as start:
        yield start


@pytest.fixture
async def memory(memory_db: Path) -> AsyncIterator[VectorMemory]:
    """The same memory file, opened by the test to count what the workers saved."""
    opened = open_memory(memory_db)
    yield opened
    await opened.store.close()


def client_side(server: DevServer, queue: str, memory: VectorMemory) -> tuple[Orchestrator, Graph]:
    """An orchestrator that starts the app's graph on ``queue`` (its workers run the nodes),
    with a 2 s heartbeat timeout: a killed worker's node is retried elsewhere soon."""
    orch = Orchestrator(
        temporal_address=server.address,
        temporal_namespace=server.namespace,
        workflow_task_queue=queue,
        heartbeat_timeout=2.0,
    )
    # The spec travels by name; the workers run their own node functions.
    return orch, build_graph(orch, memory)


async def until(check: Any) -> Any:
    """``check()``'s first truthy answer, polled (the workers are other processes)."""
    async with asyncio.timeout(WAIT):
        while not (found := check()):  # noqa: ASYNC110  (files of other processes)
            await asyncio.sleep(0.05)
        return found


async def test_the_next_node_on_another_worker_reads_what_the_killed_one_saved(
    workers: StartWorker,
    temporal_server: DevServer,
    control: Path,
    memory: VectorMemory,
) -> None:
    """``first`` saves a note and fails right after (its first attempt), is retried and saves
    nothing twice; ``second`` starts on the same worker, which is then SIGKILLed; another
    worker retries ``second`` and reads the note from the shared file. A third worker, after
    the other two are gone, runs the customer's next order and recalls both notes."""
    first_worker = workers()
    orch, graph = client_side(temporal_server, first_worker.task_queue, memory)
    customer = f"c-{uuid.uuid4().hex[:6]}"
    scope = f"customer:{customer}"
    order = {
        "customer": customer,
        "note": "prefers delivery before noon, asked twice",
        "question": "when should the parcel arrive?",
        "fail_after_save": True,
        "hold_second": True,
    }
    handle = await orch.start(graph, order, engine="temporal")

    # first: attempt 1 saved, then failed; attempt 2 found the note saved, saved nothing.
    held = await until(lambda: marks(control, customer, "second").get(1))
    assert marks(control, customer, "first") == {1: first_worker.pid, 2: first_worker.pid}
    assert held == first_worker.pid
    [entry] = await memory.store.entries(scope)
    assert entry.id == f"{handle.id}/first/note"  # the run and the node: attempt-independent
    assert entry.data == {"attempt": 1, "pid": first_worker.pid}

    assert first_worker.kill() == -signal.SIGKILL  # while second's first attempt runs there
    second_worker = workers()
    state = await asyncio.wait_for(handle.result(), WAIT)
    assert state["first_attempt"] == 2 and state["first_saved"] is False
    assert state["second_attempt"] == 2 and state["second_pid"] == second_worker.pid
    assert state["seen"] == [order["note"]]
    assert state["seen_ids"] == [entry.id]
    assert marks(control, customer, "second") == {1: first_worker.pid, 2: second_worker.pid}
    assert await memory.store.scopes() == {scope: 1}  # one note, whatever was retried

    # A worker restart: none of the writers is left; a fresh worker reads the file.
    assert second_worker.stop() == 0, second_worker.output()
    third_worker = workers()
    later = {
        "customer": customer,
        "note": "moved to the third floor, no lift",
        "question": "anything to know about the delivery?",
    }
    done = await asyncio.wait_for(orch.run(graph, later, engine="temporal"), WAIT)
    assert done["known"] == 1  # first recalled the earlier run's note
    assert sorted(done["seen"]) == sorted([order["note"], later["note"]])
    assert done["second_pid"] == third_worker.pid
    assert done["first_attempt"] == done["second_attempt"] == 1
    assert await memory.store.scopes() == {scope: 2}
