"""Structural checks of a :class:`GraphSpec`: every problem, each naming its node or edge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._spec import GraphSpec, NodeSpec

__all__ = ["RESERVED_SIGNALS", "find_cycle", "reachable", "spec_problems"]

N = TypeVar("N")


def spec_problems(spec: GraphSpec) -> list[str]:
    """List every problem of ``spec``; an empty list means it is valid."""
    problems: list[str] = []
    if not spec.name:
        problems.append("the graph has no name")
    problems += _setting_problems(spec)

    names = [n.name for n in spec.nodes]
    known = set(names)
    if not names:
        problems.append("the graph has no nodes (add_node)")
    for name, count in Counter(names).items():
        if count > 1:
            problems.append(f"node {name!r} is defined {count} times")
    for node in spec.nodes:
        if not node.name:
            problems.append("a node has an empty name")
        if node.wait is not None:
            problems += _wait_problems(node, known)
            limit, wait = spec.timeout, node.wait.timeout
            if limit is not None and wait is not None and wait >= limit:
                problems.append(  # its timeout route could never be taken
                    f"wait node {node.name!r} waits up to {wait:g} s, but the whole run may"
                    f" take only {limit:g} s (the graph's timeout): raise the graph's timeout"
                    " above the wait's, or set it to None"
                )
        elif not node.ref:
            problems.append(f"node {node.name!r} has no callable reference")
        if node.on_failure not in ("fail", "park"):
            problems.append(
                f"node {node.name!r}: on_failure must be 'fail' or 'park', got {node.on_failure!r}"
            )
    signals = Counter(n.wait.signal for n in spec.nodes if n.wait is not None)
    for signal, count in signals.items():
        if count > 1:
            problems.append(f"{count} wait nodes wait for signal {signal!r}; give each its own")
    if spec.input_schema is not None:
        problems += _schema_problems(spec.input_schema, "input_schema")

    def unknown(what: str, name: str) -> None:
        if name not in known:
            problems.append(f"{what} refers to unknown node {name!r}")

    for (source, target), count in Counter((e.source, e.target) for e in spec.edges).items():
        unknown(f"edge {source!r} -> {target!r}", source)
        unknown(f"edge {source!r} -> {target!r}", target)
        if count > 1:
            problems.append(f"edge {source!r} -> {target!r} is added {count} times")
    for source, count in Counter(r.source for r in spec.routers).items():
        if count > 1:
            problems.append(f"node {source!r} has {count} routers; merge them into one")
    for router in spec.routers:
        unknown("a conditional edge", router.source)
        if not router.routes:
            problems.append(f"the router after {router.source!r} has no routes")
        for key, target in router.routes:
            unknown(f"route {key!r} of the router after {router.source!r}", target)
    if not spec.entry:
        problems.append("the graph has no entry point (set_entry_point)")
    if not spec.finish:
        problems.append("the graph has no finish point (set_finish_point)")
    for name in spec.entry:
        unknown("entry point", name)
    for name in spec.finish:
        unknown("finish point", name)
    for key, ref in spec.reducers:
        if not key or not ref:
            problems.append(f"reducer {key!r} -> {ref!r} needs a state key and a reducer name")

    problems += _flow_problems(spec, known)
    return problems


RESERVED_SIGNALS = frozenset({"resolve"})
"""Signal names a graph run answers itself (an operator's ``resolve`` of a parked node)."""


def _wait_problems(node: NodeSpec, known: set[str]) -> list[str]:
    wait = node.wait
    assert wait is not None
    where = f"wait node {node.name!r}"
    problems = []
    if not wait.signal:
        problems.append(f"{where}: the signal name is empty")
    elif wait.signal in RESERVED_SIGNALS:
        problems.append(f"{where}: signal name {wait.signal!r} is reserved")
    if not wait.key:
        problems.append(f"{where}: the state key is empty")
    if wait.timeout is not None and not wait.timeout > 0:
        problems.append(f"{where}: timeout must be > 0 seconds or None, got {wait.timeout}")
    if wait.on_timeout is not None:
        if wait.timeout is None:
            problems.append(f"{where}: on_timeout={wait.on_timeout!r} needs a timeout")
        if wait.on_timeout not in known:
            problems.append(f"{where}: on_timeout refers to unknown node {wait.on_timeout!r}")
    if wait.schema is not None:
        problems += _schema_problems(wait.schema, f"{where}: schema")
    extras = [
        option
        for option, given in (
            ("ref", bool(node.ref)),
            ("retry", node.retry is not None),
            ("timeout", node.timeout is not None),
            ("breaker", node.breaker is not None),
            ("blocking", node.blocking),
            ("short", node.short),
            ("compensate", node.compensate is not None),
            ("on_failure", node.on_failure != "fail"),
        )
        if given
    ]
    if extras:
        problems.append(f"{where} runs no callable, so it takes no {', '.join(extras)}")
    return problems


def _schema_problems(schema: Any, where: str) -> list[str]:
    from jsonschema import Draft202012Validator, SchemaError

    if not isinstance(schema, Mapping):
        return [f"{where}: a JSON Schema must be an object, got {type(schema).__name__}"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return [f"{where} is not a valid JSON Schema: {error.message}"]
    return []


def _setting_problems(spec: GraphSpec) -> list[str]:
    problems = []
    if spec.version < 1:
        problems.append(f"version must be >= 1, got {spec.version}")
    if spec.max_workers < 1:
        problems.append(f"max_workers must be >= 1, got {spec.max_workers}")
    if spec.max_steps < 1:
        problems.append(f"max_steps must be >= 1, got {spec.max_steps}")
    if spec.timeout is not None and spec.timeout <= 0:
        problems.append(f"timeout must be > 0 seconds or None, got {spec.timeout}")
    for node in spec.nodes:
        if node.timeout is not None and node.timeout <= 0:
            problems.append(f"node {node.name!r}: timeout must be > 0 seconds, got {node.timeout}")
    return problems


def _flow_problems(spec: GraphSpec, known: set[str]) -> list[str]:
    """Cycles and reachability, over the edges whose ends exist (the others are reported)."""
    problems = []
    static: dict[str, list[str]] = {n.name: [] for n in spec.nodes}
    for edge in spec.edges:
        if edge.source in known and edge.target in known:
            static[edge.source].append(edge.target)
    cycle = find_cycle(static)
    if cycle:
        path = " -> ".join(repr(n) for n in cycle)
        problems.append(
            f"unconditional cycle {path}: a loop must pass through a conditional edge"
            " (add_conditional_edges), or it could never end"
        )
    every: dict[str, list[str]] = {name: list(targets) for name, targets in static.items()}
    for router in spec.routers:
        if router.source in known:
            every[router.source].extend(target for _, target in router.routes if target in known)
    for node in spec.nodes:
        if node.wait is not None and node.wait.on_timeout in known:
            every[node.name].append(node.wait.on_timeout)
    reached = reachable(every, [name for name in spec.entry if name in known])
    for name in static:
        if name not in reached:
            kind = "finish point" if name in spec.finish else "node"
            problems.append(f"{kind} {name!r} cannot be reached from the entry points")
    return problems


def reachable(successors: Mapping[N, Sequence[N]], start: Iterable[N]) -> set[N]:
    """Every node reachable from ``start`` (included) along ``successors[node]``."""
    seen = set(start)
    stack = list(seen)
    while stack:
        for nxt in successors[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def find_cycle(successors: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the directed graph as ``[a, b, ..., a]``, or None if it is acyclic."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(successors, white)
    for root in successors:
        if color[root] != white:
            continue
        path = [root]
        color[root] = grey
        iters = [iter(successors[root])]
        while iters:
            for nxt in iters[-1]:
                if color[nxt] == grey:
                    return [*path[path.index(nxt) :], nxt]
                if color[nxt] == white:
                    color[nxt] = grey
                    path.append(nxt)
                    iters.append(iter(successors[nxt]))
                    break
            else:
                color[path.pop()] = black
                iters.pop()
    return None
