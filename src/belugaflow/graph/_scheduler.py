"""The scheduling semantics of a graph run, as a pure state machine.

No I/O, no clock, no randomness: the drivers (sync and asyncio in process, ``GraphWorkflow``
on Temporal) call :meth:`Scheduler.start`, :meth:`~Scheduler.merge`, :meth:`~Scheduler.route` and
:meth:`~Scheduler.finish`, and take nodes from :attr:`Scheduler.ready`. The rules:

* A node runs once every forward in-edge is resolved — fired, or skipped because its source
  was skipped or its router chose another route — and at least one fired (AND-join). A node
  whose in-edges were all skipped is skipped too, so skips propagate and no join waits forever.
* An edge or route that closes a cycle (found walking from the entry points) is a *loop-back*.
  Taking it restarts its target and everything the target reaches; it waits until no node of
  that region is still running, so no result is lost or merged twice. A loop-back route must be
  the router's only choice.
* A key without a reducer may be written by two nodes only if one always runs before the other;
  otherwise the result would depend on timing, and the run fails with StateConflictError.
* ``max_steps`` bounds the runs of nodes that are part of a loop; a loop-free graph of any size
  runs to its end.
* A wait node ends with the value a signal brought (:meth:`Scheduler.receive` writes it to its
  key, and its edges fire as a node's do) or with :data:`TIMED_OUT`, which takes only its
  ``on_timeout`` route — or, without one, fails the run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from .._errors import (
    MaxStepsExceededError,
    RouteError,
    RunError,
    StateConflictError,
    WaitTimeoutError,
)
from ._reducers import Reducer, SubgraphUpdate
from ._topology import Topology

__all__ = ["TIMED_OUT", "Scheduler"]

TIMED_OUT: Any = type("TimedOut", (), {"__repr__": lambda self: "TIMED_OUT"})()
"""What a wait node ends with when no signal came in time."""

WAITING, READY, RUNNING, DONE, SKIPPED, PARKED = range(6)


class Scheduler:
    """The state of one graph run: node statuses, pending edges and the state dict."""

    __slots__ = (
        "choice",
        "in_loop",
        "loop_runs",
        "loops",
        "max_steps",
        "pending",
        "ready",
        "reducers",
        "running",
        "skipped",
        "state",
        "status",
        "steps",
        "topo",
        "writer",
    )

    def __init__(
        self,
        topology: Topology,
        reducers: Mapping[str, Reducer],
        state: dict[str, Any],
        *,
        record_skips: bool = False,
    ) -> None:
        self.topo = topo = topology
        self.reducers = reducers
        self.state = state
        size = len(topo.names)
        self.status = [WAITING] * size
        self.pending = list(topo.indegree)
        self.choice: list[frozenset[int] | None] = [None] * size
        self.writer: dict[str, int] = {}
        self.steps = 0
        """Node runs so far; the durable engine numbers its activities by it."""
        self.loop_runs = 0
        self.in_loop = topo.in_loop
        self.max_steps = topo.spec.max_steps
        self.running = 0
        self.ready: deque[int] = deque()
        self.loops: list[int] = []
        self.skipped: list[int] | None = [] if record_skips else None
        for i in topo.entry:  # fire each entry point's start edge
            self.pending[i] -= 1
            if not self.pending[i]:
                self._resolve(i)

    @property
    def done(self) -> bool:
        """Nothing is ready or running: the run is over."""
        return not self.ready and not self.running

    def start(self, i: int) -> bool:
        """Mark node ``i`` running; False if it must not start now (its loop is restarting).

        Raises:
            MaxStepsExceededError: the run's loops have used up ``max_steps``.
        """
        if self.loops and self._hold(i):
            return False
        if self.in_loop[i]:
            self.loop_runs += 1
            if self.loop_runs > self.max_steps:
                self._too_many_steps(i)
        self.steps += 1
        self.status[i] = RUNNING
        self.running += 1
        return True

    def _too_many_steps(self, i: int) -> None:
        spec = self.topo.spec
        raise MaxStepsExceededError(
            f"{spec.name!r}: run exceeded max_steps={spec.max_steps} runs of nodes inside loops"
            f" before node {self.topo.names[i]!r}; a loop probably never takes its exit route",
            graph=spec.name,
            node=self.topo.names[i],
            state=self.state,
        )

    def merge(self, i: int, update: Any) -> None:
        """Merge node ``i``'s returned update into the state."""
        if update is None:
            return
        if type(update) is not dict:
            if isinstance(update, SubgraphUpdate):
                try:
                    update = update.changes(self.reducers)
                except ValueError as error:
                    name = self.topo.names[i]
                    raise RunError(
                        f"{self.topo.spec.name!r}: sub-graph node {name!r}: {error}",
                        graph=self.topo.spec.name,
                        node=name,
                        state=self.state,
                    ) from error
            elif not isinstance(update, Mapping):
                name = self.topo.names[i]
                raise RunError(
                    f"{self.topo.spec.name!r}: node {name!r} returned {type(update).__name__};"
                    " a node must return a dict of state updates or None",
                    graph=self.topo.spec.name,
                    node=name,
                    state=self.state,
                )
            else:
                update = dict(update)
        topo = self.topo
        reducers = self.reducers
        writer = self.writer
        state = self.state
        ancestors = topo.ancestors
        for key, value in update.items():
            if reducers:
                reducer = reducers.get(key)
                if reducer is not None:
                    try:
                        state[key] = reducer(state.get(key), value)
                    except Exception as error:
                        name = topo.names[i]
                        raise RunError(
                            f"{topo.spec.name!r}: the reducer of state key {key!r} failed on the"
                            f" update of node {name!r}: {type(error).__name__}: {error}",
                            graph=topo.spec.name,
                            node=name,
                            state=state,
                        ) from error
                    continue
            w = writer.get(key)
            if (
                w is not None
                and w != i
                and not ((ancestors[i] >> w) & 1 or (ancestors[w] >> i) & 1)
            ):
                raise StateConflictError(
                    graph=topo.spec.name,
                    key=key,
                    nodes=(topo.names[w], topo.names[i]),
                    state=state,
                )
            writer[key] = i
            state[key] = value

    def route(self, i: int, result: Any) -> frozenset[int]:
        """The targets that node ``i``'s router chose by returning ``result``."""
        routes = self.topo.routes[i]
        assert routes is not None  # only called for nodes with a router
        keys = result if isinstance(result, list | tuple | set | frozenset) else (result,)
        targets = set()
        for key in keys:
            target = routes.get(key) if isinstance(key, str) else None
            if target is None:
                raise RouteError(
                    f"{self.topo.spec.name!r}: the router after node {self.topo.names[i]!r}"
                    f" returned {key!r}, which is not one of its routes"
                    f" ({', '.join(map(repr, routes))})",
                    graph=self.topo.spec.name,
                    node=self.topo.names[i],
                    state=self.state,
                )
            targets.add(target)
        if len(targets) > 1 and targets & self.topo.back[i]:
            raise RouteError(
                f"{self.topo.spec.name!r}: the router after node {self.topo.names[i]!r} chose a"
                f" loop-back route together with others ({', '.join(map(repr, keys))});"
                " a loop-back must be chosen alone",
                graph=self.topo.spec.name,
                node=self.topo.names[i],
                state=self.state,
            )
        return frozenset(targets)

    def receive(self, i: int, value: Any) -> bool:
        """Wait node ``i`` ended with ``value``: write it to the node's key and return True
        (then route and :meth:`finish` it as any node); on :data:`TIMED_OUT`, take the
        ``on_timeout`` route and return False.

        Raises:
            WaitTimeoutError: it timed out and has no ``on_timeout`` route.
        """
        topo = self.topo
        wait = topo.spec.nodes[i].wait
        assert wait is not None
        if value is not TIMED_OUT:
            self.merge(i, {wait.key: value})
            return True
        target = topo.on_timeout[i] if topo.on_timeout is not None else None
        if target is None:
            graph, name = topo.spec.name, topo.names[i]
            raise WaitTimeoutError(
                f"{graph!r}: wait node {name!r} got no {wait.signal!r} signal within"
                f" {wait.timeout:g} s, and has no on_timeout route",
                graph=graph,
                node=name,
                state=self.state,
            )
        self.finish(i, frozenset((target,)), timed_out=True)
        return False

    def finish(
        self, i: int, chosen: frozenset[int] | None = None, *, timed_out: bool = False
    ) -> None:
        """Node ``i`` completed (its update merged); fire its edges."""
        topo = self.topo
        on_timeout = topo.on_timeout
        if on_timeout is not None and on_timeout[i] is not None and not timed_out:
            chosen = topo.on_receipt[i] | (chosen or frozenset())  # a wait, received
        self.status[i] = DONE
        self.running -= 1
        self.choice[i] = chosen
        if topo.loop_back[i] is not None:
            self.loops.append(topo.loop_back[i])  # type: ignore[arg-type]
        elif chosen is not None and chosen & topo.back[i]:
            self.loops.append(next(iter(chosen)))
        else:
            pending = self.pending
            for target in topo.static_succ[i]:
                left = pending[target] - 1
                pending[target] = left
                if not left:  # this edge fired, so the target is ready
                    self.status[target] = READY
                    self.ready.append(target)
            for target in topo.cond_succ[i]:
                left = pending[target] - 1
                pending[target] = left
                if not left:
                    self._resolve(target)
        if self.loops:
            self._settle_loops()

    # -- internals ----------------------------------------------------------------------------

    def _fired(self, target: int) -> bool:
        if self.topo.is_entry[target]:
            return True
        status = self.status
        choice = self.choice
        for source, conditional in self.topo.in_edges[target]:
            if status[source] == DONE and (not conditional or target in choice[source]):  # type: ignore[operator]
                return True
        return False

    def _resolve(self, target: int) -> None:
        """All in-edges of ``target`` are resolved: make it ready, or skip it and what follows."""
        if self._fired(target):
            self.status[target] = READY
            self.ready.append(target)
            return
        topo = self.topo
        pending = self.pending
        stack = [target]
        while stack:
            node = stack.pop()
            self.status[node] = SKIPPED
            if self.skipped is not None:
                self.skipped.append(node)
            for nxt in (*topo.static_succ[node], *topo.cond_succ[node]):
                left = pending[nxt] - 1
                pending[nxt] = left
                if not left:
                    if self._fired(nxt):
                        self.status[nxt] = READY
                        self.ready.append(nxt)
                    else:
                        stack.append(nxt)

    def _hold(self, i: int) -> bool:
        regions = self.topo.regions
        if any(i in regions[t] for t in self.loops):
            self.status[i] = PARKED
            return True
        return False

    def _settle_loops(self) -> None:
        """Restart every loop whose region has no running node left."""
        status = self.status
        for target in list(self.loops):
            region = self.topo.regions[target]
            if any(status[n] == RUNNING for n in region):
                continue
            self.loops.remove(target)
            self._restart(target, region)

    def _restart(self, target: int, region: frozenset[int]) -> None:
        status = self.status
        for n in region:
            status[n] = WAITING
            self.choice[n] = None
        for n in region:  # an edge is unresolved if its source is in the region or not done yet
            self.pending[n] = sum(
                1
                for source, _ in self.topo.in_edges[n]
                if source in region or status[source] not in (DONE, SKIPPED)
            )
        kept = [n for n in self.ready if n not in region]
        self.ready.clear()
        self.ready.extend(kept)
        self.pending[target] = 0
        status[target] = READY
        self.ready.append(target)
