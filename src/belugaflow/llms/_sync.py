"""The sync API's event loop: one private loop in a daemon thread, shared by every model.

``asyncio.run`` per call would give each call a new loop, and the SDK clients (bound to the
loop that made them) would leave one connection pool behind per call. One long-lived loop keeps
one client per model and reuses its connections.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["iterate_sync", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _runner_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="belugaflow-llm-sync", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def _check_no_running_loop(coro: Coroutine[Any, Any, Any] | None, what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    if coro is not None:
        coro.close()
    raise RuntimeError(
        f"{what}: the sync API was called from a running event loop, where it would block it;"
        " use the async variant (agenerate / astream / abatch / adecide) instead"
    )


def run_sync(coro: Coroutine[Any, Any, T], *, what: str) -> T:
    """Run ``coro`` on the shared loop and wait for its result (from sync code only).

    Raises:
        RuntimeError: Called from inside a running event loop.
    """
    _check_no_running_loop(coro, what)
    future = asyncio.run_coroutine_threadsafe(coro, _runner_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # KeyboardInterrupt while waiting: stop the call too
        raise


def iterate_sync(items: AsyncIterator[T], *, what: str) -> Iterator[T]:
    """Yield the items of an async iterator from sync code, pulling each on the shared loop."""
    _check_no_running_loop(None, what)
    loop = _runner_loop()

    async def pull() -> list[T]:  # [] once exhausted, else [next item]
        try:
            return [await anext(items)]
        except StopAsyncIteration:
            return []

    try:
        while pulled := asyncio.run_coroutine_threadsafe(pull(), loop).result():
            yield pulled[0]
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            asyncio.run_coroutine_threadsafe(close(), loop).result()
