"""Routers are classified once, like nodes: an async router of any shape is awaited."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

from belugaflow import Graph, RetryPolicy, SpecError


class AsyncRouter:
    """A router object whose ``__call__`` is a coroutine function (as ``LLMRouter``'s is)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.calls = 0

    async def __call__(self, state: Any) -> str:
        self.calls += 1
        await asyncio.sleep(0)  # really suspends: it must be awaited, not just called
        return "yes" if state[self.key] else "no"


class SyncRouter:
    """A router object with a plain ``__call__``."""

    def __call__(self, state: Any) -> str:
        return "yes" if state["ok"] else "no"


async def _route_on(key: str, state: Any) -> str:
    await asyncio.sleep(0)
    return "yes" if state[key] else "no"


def routed(router: Callable[[Any], Any] | str) -> Graph:
    """check → yes | no, each writing its name to ``outcome``."""
    g = Graph("routed", retry=RetryPolicy.none())
    g.add_node("check", lambda state: {"checked": True})
    g.add_node("yes", lambda state: {"outcome": "yes"})
    g.add_node("no", lambda state: {"outcome": "no"})
    g.add_conditional_edges("check", router, ["yes", "no"])
    return g.set_entry_point("check").set_finish_point(["yes", "no"])


ASYNC_ROUTERS = {
    "object with async __call__": lambda: AsyncRouter("ok"),
    "partial of an async function": lambda: functools.partial(_route_on, "ok"),
}


@pytest.mark.parametrize("make", ASYNC_ROUTERS.values(), ids=ASYNC_ROUTERS.keys())
async def test_async_router_is_awaited_on_the_async_driver(
    make: Callable[[], Callable[[Any], Any]],
) -> None:
    """ainvoke awaits the router's coroutine and takes the route it returns."""
    g = routed(make())
    assert (await g.ainvoke({"ok": True}))["outcome"] == "yes"
    assert (await g.ainvoke({"ok": False}))["outcome"] == "no"


@pytest.mark.parametrize("make", ASYNC_ROUTERS.values(), ids=ASYNC_ROUTERS.keys())
def test_async_router_makes_the_graph_async_like_an_async_node(
    make: Callable[[], Callable[[Any], Any]],
) -> None:
    """The graph is not sync (as with an async node), and sync invoke runs it on a private
    event loop, awaiting the router."""
    g = routed(make())
    assert not g.is_sync
    assert g.invoke({"ok": True})["outcome"] == "yes"
    assert g.invoke({"ok": False})["outcome"] == "no"


async def test_sync_invoke_with_an_async_router_inside_a_running_loop_is_a_clear_error() -> None:
    """As for async nodes: invoke() inside a running loop points to ainvoke, and the router
    was never called (no coroutine left un-awaited)."""
    router = AsyncRouter("ok")
    g = routed(router)
    with pytest.raises(RuntimeError, match="ainvoke"):
        g.invoke({"ok": True})
    assert router.calls == 0


def test_router_object_with_a_sync_call_keeps_the_graph_sync() -> None:
    """A plain callable object is called inline; the graph still runs without a loop."""
    g = routed(SyncRouter())
    assert g.is_sync
    assert g.invoke({"ok": False})["outcome"] == "no"


def test_registered_router_that_is_not_callable_is_a_spec_error() -> None:
    """A router name resolving to something that cannot be called fails at compile time."""
    g = routed("not_a_router")
    g.registry.register("not_a_router", 42)
    with pytest.raises(SpecError, match="the router after 'check'"):
        g.compile()
