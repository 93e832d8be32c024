"""``Graph``: the builder. Collect nodes and edges, then ``compile()`` (or just run it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, Self

from .._defaults import DEFAULTS
from .._duration import parse_duration, to_seconds, to_seconds_or_none
from .._errors import SpecError
from .._events import Event, Hook
from .._runnable import RunnableBase, call_kind
from .._schema import SchemaLike, json_schema
from ..resilience import BreakerRegistry, CircuitBreaker, RetryPolicy
from ._compiled import CompiledGraph, SubgraphNode
from ._handle import LocalRun
from ._reducers import BUILTIN_REDUCERS, Reducer
from ._registry import Registry
from ._spec import EdgeSpec, GraphSpec, NodeSpec, RouterSpec, WaitSpec

__all__ = ["Graph"]


class Graph(RunnableBase):
    """Builds a graph of nodes that share a state dict.

    Nodes are plain functions, ``async def`` functions, Runnables (a :class:`~belugaflow.Chain`)
    or other graphs; each takes the state (read-only) and returns a dict of updates or None.
    ``compile()`` validates everything at once and freezes the builder; ``invoke`` and friends
    compile on first use.

    Example::

        graph = Graph("greet")
        graph.add_node("hello", lambda state: {"text": f"hello {state['name']}"})
        graph.set_entry_point(["hello"])
        graph.set_finish_point(["hello"])
        assert graph.invoke({"name": "ada"})["text"] == "hello ada"
    """

    def __init__(
        self,
        name: str,
        *,
        max_workers: int = DEFAULTS.max_workers,
        parallel: bool = DEFAULTS.parallel,
        max_steps: int = DEFAULTS.max_steps,
        timeout: float | timedelta | None = DEFAULTS.graph_timeout,
        retry: RetryPolicy | None = None,
        version: int = 1,
        registry: Registry | None = None,
        breakers: BreakerRegistry | None = None,
        hooks: Sequence[Hook] = (),
        input_schema: SchemaLike | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self._max_workers = max_workers
        self._parallel = parallel
        self._max_steps = max_steps
        self._timeout = to_seconds_or_none(timeout, "timeout")
        self._retry = retry or DEFAULTS.retry
        self.registry = registry if registry is not None else Registry()
        self.breakers = breakers if breakers is not None else BreakerRegistry()
        self._hooks = tuple(hooks)
        self._nodes: dict[str, NodeSpec] = {}
        self._edges: list[EdgeSpec] = []
        self._routers: list[RouterSpec] = []
        self._entry: tuple[str, ...] = ()
        self._finish: tuple[str, ...] = ()
        self._reducers: dict[str, str] = {}
        self._compiled: CompiledGraph | None = None
        self._input_schema = json_schema(input_schema) if input_schema is not None else None
        self.registry.add_builder(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self._nodes)} nodes>"

    def _mutable(self) -> None:
        if self._compiled is not None:
            raise RuntimeError(
                f"graph {self.name!r} is compiled (it ran or compile() was called) and can no"
                " longer change; build a new Graph for a new version"
            )

    def _register(self, obj: object, local_name: str) -> str:
        """Register ``obj`` under its import path, or under a name unique to this graph."""
        version = self.version
        key = self.registry.key_for(obj, f"{self.name}@{version}.{local_name}")
        try:
            return self.registry.register(key, obj)
        except ValueError:
            raise ValueError(
                f"graph {self.name!r} v{version}: {local_name!r} is already registered with"
                " another callable; one orchestrator holds one definition per graph name and"
                " version (pass version= for a new definition)"
            ) from None

    # -- building -----------------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        fn: Callable[..., Any] | RunnableBase | str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        breaker: CircuitBreaker | str | None = None,
        blocking: bool = False,
        short: bool = False,
        compensate: Callable[..., Any] | str | None = None,
        on_failure: Literal["fail", "park"] = "fail",
    ) -> Self:
        """Add a node.

        Args:
            name: Unique node name.
            fn: The callable (sync, async, Runnable, graph), or the registry key of one.
            retry: Retry policy; default: the graph's.
            timeout: Seconds one attempt may take. A plain sync function with a timeout runs in
                a worker thread, the only way to stop waiting for it.
            breaker: A circuit breaker, or the name of one registered with the orchestrator.
            blocking: The sync function does blocking I/O: run it in a worker thread.
            short: A quick step: on Temporal it runs as a local activity (no task-queue round
                trip). In process it changes nothing.
            compensate: Undoes the node's effect (a function of the state, or its registry
                key). If the run is cancelled or fails after this node started, the
                compensations of the nodes that started run, newest first. It must be
                idempotent and do nothing when there is nothing to undo.
            on_failure: ``"park"``: once its attempts are used up, the node waits for an
                operator (``resolve``: retry, skip or abort) instead of failing the run.
        """
        self._mutable()
        where = f"graph {self.name!r}: node {name!r}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"graph {self.name!r}: a node name must be a non-empty string")
        if name in self._nodes:
            raise ValueError(f"{where} is already defined")
        if isinstance(fn, str):
            ref = fn
        else:
            if isinstance(fn, Graph):
                fn = fn.compile()
            if isinstance(fn, CompiledGraph):
                if fn.spec.waits or any(n.on_failure == "park" for n in fn.spec.nodes):
                    raise ValueError(
                        f"{where}: graph {fn.spec.name!r} waits for signals or parks failed"
                        " nodes, which nothing could send it as a sub-graph; add its nodes to"
                        " this graph instead"
                    )
                fn = SubgraphNode(fn)
            call_kind(fn, blocking=blocking, where=where)  # fail now, not at compile
            ref = self._register(fn, name)
        breaker_name = None
        if isinstance(breaker, CircuitBreaker):
            self.breakers.register(breaker)
            breaker_name = breaker.name
        elif breaker is not None:
            breaker_name = breaker
        undo = compensate if isinstance(compensate, str) else None
        if compensate is not None and not isinstance(compensate, str):
            call_kind(compensate, blocking=blocking, where=f"{where}: compensate")
            undo = self._register(compensate, f"{name}.compensate")
        self._nodes[name] = NodeSpec(
            name=name,
            ref=ref,
            retry=retry,
            timeout=to_seconds_or_none(timeout, f"{where}: timeout"),
            breaker=breaker_name,
            blocking=blocking,
            short=short,
            compensate=undo,
            on_failure=on_failure,
        )
        return self

    def add_wait(
        self,
        name: str,
        *,
        signal: str | None = None,
        key: str | None = None,
        timeout: float | timedelta | str | None = None,
        on_timeout: str | None = None,
        schema: SchemaLike | None = None,
    ) -> Self:
        """Add a node that waits for a value from outside the run: a person's approval,
        another system's answer.

        The value arrives as signal ``signal`` (a run keeps one sent early until the node
        waits) and is written to state ``key``; then the node's edges fire, and a router after
        it can branch on the value. On Temporal a waiting run holds no worker and survives
        restarts of workers and server.

        Args:
            name: Unique node name.
            signal: The signal that delivers the value; default ``name``.
            key: The state key the value goes to; default the signal's name.
            timeout: How long to wait (seconds, a timedelta or ``"24h"``); default for ever.
            on_timeout: The node the run goes on to when the wait times out (then none of
                the node's other edges fire); without it, a timeout fails the run
                (:class:`~belugaflow.WaitTimeoutError`).
            schema: The value's type (a dataclass, ``TypedDict``, pydantic model, ``str``...)
                or JSON Schema. A value that breaks it is refused: a handle raises
                :class:`~belugaflow.InputError`, and a run drops it, records it in its
                ``progress`` and keeps waiting.
        """
        self._mutable()
        if name in self._nodes:
            raise ValueError(f"graph {self.name!r}: node {name!r} is already defined")
        signal = signal or name
        seconds = None
        if timeout is not None:
            seconds = (
                parse_duration(timeout).total_seconds()
                if isinstance(timeout, str)
                else to_seconds(timeout, f"graph {self.name!r}: wait node {name!r}: timeout")
            )
        self._nodes[name] = NodeSpec(
            name=name,
            ref="",
            wait=WaitSpec(
                signal=signal,
                key=key or signal,
                timeout=seconds,
                on_timeout=on_timeout,
                schema=json_schema(schema) if schema is not None else None,
            ),
        )
        return self

    def add_edge(self, source: str, target: str) -> Self:
        """``target`` runs after ``source`` (and after every other node with an edge to it)."""
        self._mutable()
        self._edges.append(EdgeSpec(source, target))
        return self

    def add_conditional_edges(
        self,
        source: str,
        router: Callable[..., Any] | str,
        mapping: Mapping[str, str] | Sequence[str],
    ) -> Self:
        """After ``source``, ``router(state)`` picks where to go.

        The router returns a key of ``mapping`` (or a list of keys to take several routes);
        routes not taken are skipped, and so is whatever only they lead to. A list of node
        names stands for ``{name: name}``. A route back to an earlier node makes a loop.
        """
        self._mutable()
        routes = dict(mapping) if isinstance(mapping, Mapping) else {n: n for n in mapping}
        if isinstance(router, str):
            ref = router
        else:
            if not callable(router):
                raise TypeError(
                    f"graph {self.name!r}: the router after {source!r} must be callable"
                )
            ref = self._register(router, f"{source}.router")
        self._routers.append(RouterSpec(source=source, ref=ref, routes=tuple(routes.items())))
        return self

    def set_entry_point(self, names: str | Sequence[str]) -> Self:
        """The nodes that run first."""
        self._mutable()
        self._entry = (names,) if isinstance(names, str) else tuple(names)
        return self

    def set_finish_point(self, names: str | Sequence[str]) -> Self:
        """The nodes where the run is meant to end; each must be reachable."""
        self._mutable()
        self._finish = (names,) if isinstance(names, str) else tuple(names)
        return self

    def set_reducer(self, key: str, reducer: str | Reducer) -> Self:
        """How writes to state ``key`` combine: ``"append"``, ``"merge"``, ``"add"`` or a
        function ``reducer(current, update) -> new`` (``current`` is None while unset)."""
        self._mutable()
        ref = reducer if isinstance(reducer, str) else self._register(reducer, f"reducer.{key}")
        self._reducers[key] = ref
        return self

    # -- compiling ----------------------------------------------------------------------------

    def to_spec(self) -> GraphSpec:
        """Validate and return the graph as a :class:`GraphSpec`.

        Raises:
            SpecError: listing every problem found.
        """
        unknown = sorted(set(self._reducers.values()) - set(BUILTIN_REDUCERS))
        problems = [
            f"reducer {ref!r} is neither built in ({', '.join(sorted(BUILTIN_REDUCERS))}) nor"
            " registered"
            for ref in unknown
            if ref not in self.registry
        ]
        if problems:
            raise SpecError(f"graph {self.name!r}", problems)
        return GraphSpec(
            name=self.name,
            nodes=tuple(self._nodes.values()),
            edges=tuple(self._edges),
            routers=tuple(self._routers),
            entry=self._entry,
            finish=self._finish,
            reducers=tuple(self._reducers.items()),
            version=self.version,
            max_workers=self._max_workers,
            parallel=self._parallel,
            max_steps=self._max_steps,
            timeout=self._timeout,
            retry=self._retry,
            input_schema=self._input_schema,
        )

    def compile(self) -> CompiledGraph:
        """Validate, freeze this builder and return the runnable graph (cached)."""
        if self._compiled is None:
            spec = self.to_spec()
            self._compiled = CompiledGraph(
                spec, self.registry, breakers=self.breakers, hooks=self._hooks
            )
            self.registry.add_graph(spec)
        return self._compiled

    # -- running (compiles on first use) -------------------------------------------------------

    @property
    def is_sync(self) -> bool:
        return self.compile().is_sync

    def invoke(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Compile if needed, run on ``input`` and return the final state."""
        return self.compile().invoke(input)

    async def ainvoke(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Compile if needed, run on ``input`` on the running loop, return the final state."""
        return await self.compile().ainvoke(input)

    async def start(self, input: Mapping[str, Any], *, id: str | None = None) -> LocalRun:
        """Compile if needed and start a run in process; see :meth:`CompiledGraph.start`."""
        return await self.compile().start(input, id=id)

    def stream(self, input: Mapping[str, Any]) -> Iterator[Event]:
        """Yield the run's events from sync code."""
        return self.compile().stream(input)

    def astream(self, input: Mapping[str, Any]) -> AsyncIterator[Event]:
        """Yield the run's events as they happen."""
        return self.compile().astream(input)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        return self.compile().to_mermaid()
