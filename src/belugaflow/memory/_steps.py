"""Memory in steps: a node (or chain step) declares what it reads with :func:`reads`, and
saves under ids that :func:`step_id` derives from its run, so a retried step saves nothing
twice. Both work the same in process and on Temporal: a declared read happens inside the
node's attempt — inside its activity, on whichever worker runs it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .. import _context
from .._errors import InputError
from ._kinds import Memory, Recalled

__all__ = ["reads", "step_id"]

Node = Callable[[Any], Awaitable[Any]]


def reads(
    memory: Memory,
    scope: str,
    *,
    query: str | None = None,
    **filters: Any,
) -> Callable[[Callable[[Any, Recalled], Any]], Node]:
    """Declare that a node reads ``memory``: before each attempt, what the memory keeps for
    ``scope`` (about ``query``) is loaded and passed to the node as its second argument.

    ``scope``, ``query`` and the text values of ``filters`` (a :class:`VectorMemory`'s
    ``kind``, ``where``, ...) are templates filled from the state: ``"customer:{customer}"``.
    The decorated node takes the state alone, so it goes into chains and graphs, and is
    registered by name, like any node.

    Raises:
        InputError: (at run time) a template names a key the state does not have.
    """
    _context.enable()  # step_id() needs the running node's name

    def declare(fn: Callable[[Any, Recalled], Any]) -> Node:
        @functools.wraps(fn)
        async def node(state: Any) -> Any:
            values = state if isinstance(state, Mapping) else {}
            loaded = await memory.load(
                _fill(scope, values, "scope"),
                query=None if query is None else _fill(query, values, "query"),
                **{name: _fill_any(value, values, name) for name, value in filters.items()},
            )
            result = fn(state, loaded)
            return await result if inspect.isawaitable(result) else result

        return node

    return declare


def step_id(*parts: str) -> str:
    """An entry id that every attempt of the running step derives alike: the run (the
    workflow id on Temporal), the node and ``parts`` (``step_id("order")``).

    Raises:
        RuntimeError: outside a node, or in a run without an id (an in-process run with no
            event listener): pass an id of your own data instead (an order id).
    """
    scope = _context.current()
    run = _workflow_id() or (scope[2] if scope else None)
    if scope is None or run is None:
        raise RuntimeError(
            "step_id(): no run to derive an id from here (outside a node, or an in-process"
            " run without listeners); pass id= from your own data, e.g. the order id"
        )
    return "/".join((run, scope[1], *parts))


def _workflow_id() -> str | None:
    try:
        from temporalio import activity

        return activity.info().workflow_id
    except (ImportError, RuntimeError):  # not in an activity
        return None


def _fill(template: str, state: Mapping[str, Any], what: str) -> str:
    try:
        return template.format_map(state)
    except (KeyError, IndexError, ValueError) as error:
        raise InputError(
            f"the memory {what} {template!r}", [f"the state cannot fill it: {error!r}"]
        ) from None


def _fill_any(value: Any, state: Mapping[str, Any], what: str) -> Any:
    if isinstance(value, str):
        return _fill(value, state, what)
    if isinstance(value, Mapping):
        return {key: _fill_any(item, state, f"{what}.{key}") for key, item in value.items()}
    return value
