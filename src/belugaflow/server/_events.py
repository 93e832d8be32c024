"""``GET /api/v1/workflows/{id}/events``: a run's progress as Server-Sent Events.

The stream is read from the run's Temporal history (:func:`~belugaflow.temporal._history.watch`,
a long poll), so the API process needs no part of the worker's hooks and any number of API
processes can serve it. Each message is one event::

    id: 12
    event: belugaflow.node.completed
    data: {"event": "belugaflow.node.completed", "workflow_id": "...", "node": "validate", ...}

``id`` is the history event's id (``12.1`` for the second message one history event gives);
a client that reconnects with ``Last-Event-ID`` (browsers' ``EventSource`` does it by itself)
gets only what came after. The stream ends after the run's end event; a comment line keeps an
idle connection open, and a client that goes away stops the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from ..temporal._history import HistoryMessage, MessageId, parse_message_id, watch
from ._auth import Scoped
from ._problems import Problem, responses
from ._runs import connected, find_run

if TYPE_CHECKING:
    pass

__all__ = ["KEEPALIVE", "event_routes", "sse"]

KEEPALIVE = 15.0
"""Seconds between comment lines on an idle stream."""

MEDIA_TYPE = "text/event-stream"


def sse(message: HistoryMessage) -> bytes:
    """One Server-Sent Events message."""
    data = json.dumps({"id": message.sse_id, **message.data}, separators=(",", ":"))
    return f"id: {message.sse_id}\nevent: {message.name}\ndata: {data}\n\n".encode()


def event_routes(*, keepalive: float = KEEPALIVE) -> APIRouter:
    """The events route."""
    router = APIRouter(tags=["workflows"])

    @router.get(
        "/workflows/{id}/events",
        summary="Stream a workflow's events",
        response_class=StreamingResponse,
        responses=responses(
            400,
            404,
            503,
            ok={
                200: {
                    "description": "Server-Sent Events, one per event, until the run ends.",
                    "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
                }
            },
        ),
    )
    async def workflow_events(
        orch: Scoped,
        id: Annotated[str, Path(description="The workflow id.")],
        last_event_id: Annotated[
            str | None,
            Header(alias="Last-Event-ID", description="Resume after this message (N or N.K)."),
        ] = None,
        after: Annotated[
            str | None, Query(description="As Last-Event-ID, for clients that cannot set it.")
        ] = None,
    ) -> StreamingResponse:
        """The run's node and run events as they are recorded — each node's ``scheduled``,
        ``started``, ``completed`` / ``failed`` (and ``retry_scheduled`` for retried
        attempts), signals received, the run's end — from the start or after
        ``Last-Event-ID``; the stream ends after the run's end."""
        resume = after if after is not None else last_event_id
        position: MessageId = (0, 0)
        if resume is not None and resume.strip():
            try:
                position = parse_message_id(resume)
            except ValueError as error:
                raise Problem(400, "invalid_event_id", str(error)) from None
        await find_run(orch, id)  # 404 before the stream starts
        client = await connected(orch)
        messages = watch(client, id, after=position, graphs=orch.registry.graphs)
        return StreamingResponse(
            _stream(messages, keepalive),
            media_type=MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


_END = object()


async def _stream(
    messages: AsyncIterator[HistoryMessage], keepalive: float
) -> AsyncIterator[bytes]:
    """The messages as SSE, a comment every ``keepalive`` seconds while none comes.

    History is read in a task of its own, so a keep-alive never cuts a long poll short; when
    the client goes away the server stops iterating this generator, and ``finally`` stops
    the reader.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=64)

    async def read() -> None:
        try:
            async for message in messages:
                await queue.put(message)
        except Exception as error:  # Temporal went away: tell the client, then end
            await queue.put(error)
        await queue.put(_END)

    reader = asyncio.create_task(read())
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                data = json.dumps({"event": "belugaflow.stream.error", "error": str(item)})
                yield f"event: belugaflow.stream.error\ndata: {data}\n\n".encode()
                return
            assert isinstance(item, HistoryMessage)
            yield sse(item)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await _close(messages)


async def _close(messages: AsyncIterator[HistoryMessage]) -> None:
    close = getattr(messages, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
