"""A worker app for the heartbeat test: ``belugaflow worker --app
tests.temporal.heartbeat_app:orch``.

Its graph ``long`` has two parallel nodes that each run for a minute on the first worker that
takes them — one blocking (a worker thread), one async — and return at once on any other
worker. A marker file per run and node, in ``$BELUGAFLOW_HEARTBEAT_DIR``, says which worker
took it first.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from belugaflow import Graph, Orchestrator

__all__ = ["DIR_ENV", "NODE_SECONDS", "build_graph", "orch"]

DIR_ENV = "BELUGAFLOW_HEARTBEAT_DIR"
NODE_SECONDS = 60.0


def _first_time(state: Mapping[str, Any], node: str) -> tuple[Path, bool]:
    """The node's marker file, and whether this is the first worker to run the node."""
    mark = Path(os.environ[DIR_ENV]) / f"{state['run']}.{node}"
    try:
        with mark.open("x") as out:
            out.write(str(os.getpid()))
    except FileExistsError:
        return mark, False
    return mark, True


def slow_blocking(state: Mapping[str, Any]) -> dict[str, Any]:
    mark, first = _first_time(state, "blocking")
    if first:
        time.sleep(NODE_SECONDS)
    return {"blocking": [int(mark.read_text()), os.getpid()]}


async def slow_async(state: Mapping[str, Any]) -> dict[str, Any]:
    mark, first = _first_time(state, "async")
    if first:
        await asyncio.sleep(NODE_SECONDS)
    return {"async": [int(mark.read_text()), os.getpid()]}


def build_graph(orch: Orchestrator) -> Graph:
    graph = orch.create_graph("long")
    graph.add_node("blocking", slow_blocking, blocking=True)
    graph.add_node("async", slow_async)
    return graph.set_entry_point(["blocking", "async"]).set_finish_point(["blocking", "async"])


orch = Orchestrator()
build_graph(orch)
