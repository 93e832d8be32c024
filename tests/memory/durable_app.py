"""The worker app of the durable memory test: a graph of two nodes that use one memory on a
SQLite file, which every worker process opens.

``belugaflow worker --app tests.memory.durable_app:orch`` serves the graph ``memory-durable``:

- ``first`` recalls the customer's notes, saves the run's ``note`` under an id of the run and
  node (:func:`~belugaflow.memory.step_id`), and — when the input says ``fail_after_save`` —
  fails its first attempt right after the save, as a worker that lost the answer would;
- ``second`` recalls the customer's notes about ``question`` and returns what it saw; when the
  input says ``hold_second``, its first attempt waits (heartbeating) until its worker is
  killed.

Each attempt of a node leaves a marker ``<customer>.<node>.<attempt>`` holding the worker's pid
in ``$BELUGAFLOW_TEST_CONTROL_DIR``; the memory file is ``$BELUGAFLOW_TEST_MEMORY_DB``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from temporalio import activity

from belugaflow import Graph, Orchestrator, RetryPolicy
from belugaflow.memory import LocalEmbedder, Recalled, SQLiteStore, VectorMemory, reads, step_id

__all__ = ["CONTROL_ENV", "GRAPH", "MEMORY_ENV", "SCOPE", "build_graph", "marks", "open_memory"]

MEMORY_ENV = "BELUGAFLOW_TEST_MEMORY_DB"
CONTROL_ENV = "BELUGAFLOW_TEST_CONTROL_DIR"
GRAPH = "memory-durable"
SCOPE = "customer:{customer}"
_HOLD = 0.05  # seconds between looks while held


def open_memory(path: str | os.PathLike[str]) -> VectorMemory:
    """The memory every process of the test opens on the same file."""
    embedder = LocalEmbedder()
    return VectorMemory(embedder, SQLiteStore(path, embedder=embedder.name), k=5)


def marks(control: Path, customer: str, node: str) -> dict[int, int]:
    """The attempts of ``node`` for ``customer`` so far: attempt → pid of its worker."""
    prefix = f"{customer}.{node}."
    return {
        int(path.name.removeprefix(prefix)): int(path.read_text())
        for path in control.glob(f"{prefix}*")
    }


def _mark(state: dict[str, Any], node: str) -> int:
    attempt = activity.info().attempt
    control = Path(os.environ[CONTROL_ENV])
    (control / f"{state['customer']}.{node}.{attempt}").write_text(str(os.getpid()))
    return attempt


def build_graph(orch: Orchestrator, memory: VectorMemory) -> Graph:
    """The graph ``first → second`` on ``memory`` (quick retries: 0.2 s apart)."""

    @reads(memory, SCOPE, query="{note}")
    async def first(state: dict[str, Any], recalled: Recalled) -> dict[str, Any]:
        attempt = _mark(state, "first")
        saved = await memory.save(
            SCOPE.format_map(state),
            state["note"],
            kind="note",
            data={"attempt": attempt, "pid": os.getpid()},
            id=step_id("note"),
        )
        if state.get("fail_after_save") and attempt == 1:
            raise ConnectionError("the worker lost its answer after the note was saved")
        return {"first_attempt": attempt, "first_saved": saved, "known": len(recalled.entries)}

    @reads(memory, SCOPE, query="{question}")
    async def second(state: dict[str, Any], recalled: Recalled) -> dict[str, Any]:
        attempt = _mark(state, "second")
        # Held until the test kills this worker: nothing to wait on but time (the node
        # heartbeats meanwhile, so another worker retries it once the heartbeats stop).
        while state.get("hold_second") and attempt == 1:  # noqa: ASYNC110
            await asyncio.sleep(_HOLD)
        return {
            "second_attempt": attempt,
            "second_pid": os.getpid(),
            "seen": [entry.text for entry in recalled.entries],
            "seen_ids": [entry.id for entry in recalled.entries],
        }

    graph = orch.create_graph(GRAPH)
    retry = RetryPolicy(max_attempts=5, initial_interval=0.2)
    graph.add_node("first", first, retry=retry)
    graph.add_node("second", second, retry=retry)
    graph.add_edge("first", "second")
    graph.set_entry_point(["first"])
    graph.set_finish_point(["second"])
    return graph


_orch: Orchestrator | None = None


def __getattr__(name: str) -> Orchestrator:
    # Built on first access, in the worker (the test process imports this module too).
    global _orch
    if name != "orch":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _orch is None:
        _orch = Orchestrator()
        build_graph(_orch, open_memory(os.environ[MEMORY_ENV]))
    return _orch
