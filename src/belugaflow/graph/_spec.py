"""``GraphSpec``: the immutable, JSON-serializable description of a graph.

A spec is what travels — to Temporal as workflow input, through REST, from YAML. It names
callables (nodes, routers, custom reducers) by their key in a
:class:`~belugaflow.graph.Registry`; it never holds a function.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from .._defaults import DEFAULTS
from .._errors import SpecError
from ..resilience import RetryPolicy
from ._mermaid import to_mermaid
from ._validate import spec_problems

__all__ = ["SPEC_FORMAT", "EdgeSpec", "GraphSpec", "NodeSpec", "RouterSpec", "WaitSpec"]

SPEC_FORMAT = 1
"""Version of the ``to_dict`` layout; bumped on incompatible changes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSpec:
    """What a wait node waits for: a value sent to the run from outside, as a signal."""

    signal: str
    """The signal (or update) name that delivers the value."""
    key: str
    """The state key the value is written to."""
    timeout: float | None = None
    """Seconds to wait; None waits for ever."""
    on_timeout: str | None = None
    """The node the run goes on to when the wait times out; None fails the run
    (:class:`~belugaflow.WaitTimeoutError`)."""
    schema: Mapping[str, Any] | None = None
    """JSON Schema of the value; a value that breaks it is dropped and recorded, and the run
    keeps waiting. None accepts any JSON value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """One node: its name in the graph, the registry key of its callable and its policies."""

    name: str
    """Unique name within the graph."""
    ref: str
    """Registry key of the callable; empty for a wait node."""
    retry: RetryPolicy | None = None
    """Retry policy; None means the graph's default."""
    timeout: float | None = None
    """Seconds one attempt may take; None means no limit."""
    breaker: str | None = None
    """Name of the circuit breaker guarding the node, if any."""
    blocking: bool = False
    """Run a sync callable in a worker thread (it does blocking I/O)."""
    short: bool = False
    """A quick step (well under a few seconds): on Temporal it runs as a local activity, in
    the worker that runs the workflow, without a round trip through the task queue."""
    compensate: str | None = None
    """Registry key of the callable that undoes the node's effect, run when the run is
    cancelled or fails after the node started (newest first); it must be idempotent and a
    no-op when there is nothing to undo."""
    on_failure: Literal["fail", "park"] = "fail"
    """Once the node's attempts are used up: fail the run, or park it until an operator
    resolves the node (retry, skip or abort)."""
    wait: WaitSpec | None = None
    """Set for a wait node, which runs no callable: it waits for a signal."""


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """An unconditional edge: ``target`` may run once ``source`` completed."""

    source: str
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterSpec:
    """A conditional edge set: after ``source`` runs, the router picks routes by key."""

    source: str
    """The node whose completion triggers the router."""
    ref: str
    """Registry key of the router callable; it returns a route key or a list of keys."""
    routes: tuple[tuple[str, str], ...]
    """``(key, target node)`` pairs, in declaration order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphSpec:
    """A validated graph, as plain data. Build one with :class:`~belugaflow.Graph`."""

    name: str
    version: int = 1
    """Version of this graph's definition; a run keeps the version it started with."""
    nodes: tuple[NodeSpec, ...]
    edges: tuple[EdgeSpec, ...] = ()
    routers: tuple[RouterSpec, ...] = ()
    entry: tuple[str, ...]
    """Nodes that run first."""
    finish: tuple[str, ...]
    """Nodes whose completion ends the interesting part of the run; each must be reachable."""
    reducers: tuple[tuple[str, str], ...] = ()
    """``(state key, reducer key)``: how parallel writes to the key combine."""
    max_workers: int = DEFAULTS.max_workers
    """Most nodes running at once."""
    parallel: bool = DEFAULTS.parallel
    """False runs ready nodes one at a time, in a stable order."""
    max_steps: int = DEFAULTS.max_steps
    """Most runs of nodes that are part of a loop, in one run; a loop that needs more fails the
    run. A graph without loops is not bounded by it."""
    timeout: float | None = DEFAULTS.graph_timeout
    """Seconds the whole run may take; None means no limit."""
    retry: RetryPolicy = field(default_factory=lambda: DEFAULTS.retry)
    """Retry policy for nodes that do not set their own."""
    input_schema: Mapping[str, Any] | None = None
    """JSON Schema of the run's input (the initial state); None accepts any object."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecError(f"graph {self.name!r}", problems)

    def problems(self) -> list[str]:
        """Every structural problem of this spec (empty when valid)."""
        return spec_problems(self)

    @property
    def waits(self) -> dict[str, NodeSpec]:
        """The wait nodes, by the signal each waits for."""
        return {n.wait.signal: n for n in self.nodes if n.wait is not None}

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart: solid edges always fire, dotted ones are routes."""
        return to_mermaid(self)

    def schema(self) -> dict[str, Any]:
        """The JSON Schemas a client needs to drive this graph's runs: input, result, signals,
        updates and the ``progress`` query (the same shape as a hand-written workflow's)."""
        from ._published import graph_schema

        return graph_schema(self)

    # -- serialization -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """This spec as JSON-compatible data (see :meth:`from_dict`)."""
        return {
            "format": SPEC_FORMAT,
            "name": self.name,
            "version": self.version,
            "nodes": [_node_to_dict(n) for n in self.nodes],
            "edges": [[e.source, e.target] for e in self.edges],
            "routers": [
                {"source": r.source, "ref": r.ref, "routes": [list(pair) for pair in r.routes]}
                for r in self.routers
            ],
            "entry": list(self.entry),
            "finish": list(self.finish),
            "reducers": [list(pair) for pair in self.reducers],
            "max_workers": self.max_workers,
            "parallel": self.parallel,
            "max_steps": self.max_steps,
            "timeout": self.timeout,
            "retry": retry_to_dict(self.retry),
            **({"input_schema": self.input_schema} if self.input_schema is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphSpec:
        """Rebuild a spec from :meth:`to_dict` output.

        Raises:
            SpecError: the data is malformed or describes an invalid graph.
        """
        name = str(data.get("name", "<unnamed>"))
        try:
            if data.get("format", SPEC_FORMAT) != SPEC_FORMAT:
                raise ValueError(f"unsupported format {data.get('format')!r}")
            return cls(
                name=data["name"],
                version=data.get("version", 1),
                nodes=tuple(_node_from_dict(n) for n in data["nodes"]),
                edges=tuple(EdgeSpec(s, t) for s, t in data.get("edges", ())),
                routers=tuple(
                    RouterSpec(
                        source=r["source"], ref=r["ref"], routes=tuple(map(tuple, r["routes"]))
                    )
                    for r in data.get("routers", ())
                ),
                entry=tuple(data["entry"]),
                finish=tuple(data["finish"]),
                reducers=tuple(map(tuple, data.get("reducers", ()))),
                max_workers=data.get("max_workers", DEFAULTS.max_workers),
                parallel=data.get("parallel", DEFAULTS.parallel),
                max_steps=data.get("max_steps", DEFAULTS.max_steps),
                timeout=data.get("timeout", DEFAULTS.graph_timeout),
                retry=retry_from_dict(data["retry"]) if "retry" in data else DEFAULTS.retry,
                input_schema=data.get("input_schema"),
            )
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            what = f"missing field {error}" if isinstance(error, KeyError) else str(error)
            raise SpecError(f"graph spec {name!r}", [what]) from error

    def to_json(self) -> str:
        """This spec as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GraphSpec:
        """Rebuild a spec from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError("graph spec JSON", [str(error)]) from error
        return cls.from_dict(data)


def _node_to_dict(node: NodeSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"name": node.name, "ref": node.ref}
    if node.retry is not None:
        data["retry"] = retry_to_dict(node.retry)
    if node.timeout is not None:
        data["timeout"] = node.timeout
    if node.breaker is not None:
        data["breaker"] = node.breaker
    if node.blocking:
        data["blocking"] = True
    if node.short:
        data["short"] = True
    if node.compensate is not None:
        data["compensate"] = node.compensate
    if node.on_failure != "fail":
        data["on_failure"] = node.on_failure
    if node.wait is not None:
        wait = node.wait
        data["wait"] = {"signal": wait.signal, "key": wait.key, "timeout": wait.timeout}
        if wait.on_timeout is not None:
            data["wait"]["on_timeout"] = wait.on_timeout
        if wait.schema is not None:
            data["wait"]["schema"] = wait.schema
    return data


def _node_from_dict(data: Mapping[str, Any]) -> NodeSpec:
    retry = data.get("retry")
    return NodeSpec(
        name=data["name"],
        ref=data["ref"],
        retry=retry_from_dict(retry) if retry is not None else None,
        timeout=data.get("timeout"),
        breaker=data.get("breaker"),
        blocking=data.get("blocking", False),
        short=data.get("short", False),
        compensate=data.get("compensate"),
        on_failure=data.get("on_failure", "fail"),
        wait=WaitSpec(**data["wait"]) if "wait" in data else None,
    )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def retry_to_dict(policy: RetryPolicy) -> dict[str, Any]:
    """A retry policy as JSON data; exception types travel as ``module:qualname``."""
    return {
        "max_attempts": policy.max_attempts,
        "initial_interval": _seconds(policy.initial_interval),
        "backoff_coefficient": policy.backoff_coefficient,
        "max_interval": _seconds(policy.max_interval),
        "jitter": policy.jitter,
        "max_elapsed": _seconds(policy.max_elapsed),
        "non_retryable": [f"{t.__module__}:{t.__qualname__}" for t in policy.non_retryable]
        + list(policy.non_retryable_names),
    }


def _error_type(path: str) -> type[BaseException] | None:
    """The exception class at ``module:qualname`` if its module is already imported.

    Never imports anything: a spec from outside must not be able to load code.
    """
    module_name, _, qualname = path.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def retry_from_dict(data: Mapping[str, Any]) -> RetryPolicy:
    """The inverse of :func:`retry_to_dict`.

    A non-retryable type whose module is imported comes back as the type (subclasses match);
    otherwise its bare name is kept and matched exactly, as Temporal does.
    """
    types: list[type[BaseException]] = []
    names: list[str] = []
    for entry in data.get("non_retryable", ()):
        found = _error_type(entry) if ":" in entry else None
        if found is not None:
            types.append(found)
        else:
            names.append(entry.rpartition(":")[2].rpartition(".")[2])
    return RetryPolicy(
        max_attempts=data["max_attempts"],
        initial_interval=data["initial_interval"],
        backoff_coefficient=data["backoff_coefficient"],
        max_interval=data.get("max_interval"),
        jitter=data.get("jitter", RetryPolicy.default.jitter),
        max_elapsed=data.get("max_elapsed"),
        non_retryable=tuple(types),
        non_retryable_names=tuple(names),
    )
