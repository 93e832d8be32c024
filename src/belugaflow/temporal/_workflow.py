"""``GraphWorkflow``: runs any :class:`~belugaflow.graph.GraphSpec` durably.

The workflow drives the same :class:`~belugaflow.graph._scheduler.Scheduler` as the local engine
— same joins, skips, loops, reducers and conflict checks — and runs every node and router as an
activity. The scheduler is pure (no I/O, no clock, no randomness), so it is deterministic under
replay: a run's decisions depend only on the activity results recorded in its history, never on
which activity finished first in wall-clock time.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from .._errors import RunError, SpecError
    from ..graph import GraphSpec
    from ..graph._plan import resolve_reducers
    from ..graph._reducers import Reducer, SubgraphUpdate
    from ..graph._scheduler import Scheduler
    from ..graph._topology import Topology
    from ._messages import (
        NODE_ACTIVITY,
        ROUTE_ACTIVITY,
        SUBGRAPH_TAG,
        NodeCall,
        RouteCall,
    )

__all__ = ["GraphWorkflow"]

ROUTER_TIMEOUT = timedelta(seconds=30)
ROUTER_RETRY = TemporalRetryPolicy(maximum_attempts=1)
DEFAULT_NODE_TIMEOUT = timedelta(hours=1)


@functools.lru_cache(maxsize=256)
def _compile(spec_json: str) -> tuple[GraphSpec, Topology, dict[str, Reducer]]:
    """A spec's topology and reducers, built once per worker for each distinct definition.

    Keyed by content, not by name and version, so a changed spec that kept its version is
    never confused with the old one. Everything returned is immutable or only read.
    """
    spec = GraphSpec.from_dict(json.loads(spec_json))
    problems: list[str] = []
    reducers = resolve_reducers(spec, None, problems)
    if problems:
        raise SpecError(f"graph {spec.name!r}", problems)
    return spec, Topology.of(spec), reducers


def _failure(error: Exception) -> ApplicationError:
    """A definition or run error fails the workflow for good (never a workflow-task retry)."""
    return ApplicationError(str(error), type=type(error).__name__, non_retryable=True)


@workflow.defn(name="belugaflow.graph", sandboxed=False)
class GraphWorkflow:
    """Run a graph spec on its input state and return the final state."""

    def __init__(self) -> None:
        self._running: list[str] = []
        self._done: list[str] = []

    @workflow.query(name="progress")
    def progress(self) -> dict[str, list[str]]:
        """The nodes running now and those completed so far."""
        return {"running": list(self._running), "completed": list(self._done)}

    @workflow.run
    async def run(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """``input`` is a :class:`~belugaflow.temporal._messages.GraphInput`."""
        try:
            spec, topology, reducers = _compile(json.dumps(input["spec"], sort_keys=True))
            sched = Scheduler(topology, reducers, dict(input["state"]))
            return await self._drive(spec, sched)
        except (SpecError, RunError) as error:
            raise _failure(error) from error

    async def _drive(self, spec: GraphSpec, sched: Scheduler) -> dict[str, Any]:
        topo = sched.topo
        limit = spec.max_workers if spec.parallel else 1
        ready = sched.ready
        running: dict[asyncio.Task[Any], int] = {}
        while True:
            while ready and len(running) < limit:
                i = ready.popleft()
                if sched.start(i):
                    task = asyncio.create_task(self._node(spec, i, sched.steps, sched.state))
                    running[task] = i
                    self._running.append(topo.names[i])
            if not running:
                return sched.state
            done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=running.__getitem__):  # node order: replay-stable
                i = running.pop(task)
                self._running.remove(topo.names[i])
                update = task.result()
                if isinstance(update, dict) and SUBGRAPH_TAG in update:
                    update = SubgraphUpdate(*update[SUBGRAPH_TAG])
                sched.merge(i, update)
                chosen = None
                if topo.routes[i] is not None:
                    chosen = sched.route(i, await self._route(spec, i, sched.state))
                sched.finish(i, chosen)
                self._done.append(topo.names[i])

    async def _node(self, spec: GraphSpec, i: int, step: int, state: dict[str, Any]) -> Any:
        node = spec.nodes[i]
        retry = node.retry if node.retry is not None else spec.retry
        timeout = timedelta(seconds=node.timeout) if node.timeout else DEFAULT_NODE_TIMEOUT
        call = NodeCall(
            graph=spec.name, node=node.name, ref=node.ref, state=dict(state), blocking=node.blocking
        )
        if node.short:
            return await workflow.execute_local_activity(
                NODE_ACTIVITY,
                call,
                start_to_close_timeout=timeout,
                retry_policy=retry.to_temporal(),
                activity_id=f"{step}:{node.name}",
            )
        return await workflow.execute_activity(
            NODE_ACTIVITY,
            call,
            start_to_close_timeout=timeout,
            retry_policy=retry.to_temporal(),
            activity_id=f"{step}:{node.name}",  # readable in the UI, unique across loops
        )

    async def _route(self, spec: GraphSpec, i: int, state: dict[str, Any]) -> Any:
        router = next(r for r in spec.routers if r.source == spec.nodes[i].name)
        return await workflow.execute_local_activity(
            ROUTE_ACTIVITY,
            RouteCall(graph=spec.name, node=router.source, ref=router.ref, state=dict(state)),
            start_to_close_timeout=ROUTER_TIMEOUT,
            retry_policy=ROUTER_RETRY,  # a router is a pure decision: retrying cannot help
        )
