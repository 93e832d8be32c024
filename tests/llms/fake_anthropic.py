"""A fake Anthropic Messages API server: the wire format, scripted per test.

``POST /v1/messages`` answers with what the test queued (see the reply builders below), else
with the text ``"ok"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.llms.fake_server import FakeServer, Recorded, Reply, sse

__all__ = ["error", "fake_anthropic", "message", "stream"]

MODEL = "claude-test"


def message(
    text: str | None = "ok",
    *,
    tool_uses: Sequence[tuple[str, dict[str, Any]]] = (),
    stop_reason: str | None = None,
    usage: tuple[int, int] = (10, 5),
    model: str = MODEL,
) -> Reply:
    """A message with a text block and/or tool_use blocks ``(name, input)``."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    content += (
        {"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": arguments}
        for index, (name, arguments) in enumerate(tool_uses)
    )
    return Reply.json(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason or ("tool_use" if tool_uses else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
    )


def error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    retry_after: float | None = None,
) -> Reply:
    """An API error in Anthropic's shape (529 is ``overloaded_error``)."""
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Reply.json(body, status, headers)


def stream(
    pieces: Sequence[str] = ("o", "k"),
    *,
    tool_uses: Sequence[tuple[str, str]] = (),
    usage: tuple[int, int] = (10, 5),
    cut_after: int | None = None,
    error_event: tuple[str, str] | None = None,
    model: str = MODEL,
) -> Reply:
    """A streamed message: message_start, a text block with one delta per piece, tool_use
    blocks whose JSON input comes in two deltas, message_delta, message_stop. ``cut_after``
    drops the connection after that many text deltas; ``error_event`` = (type, message) sends
    an error event after the text instead of finishing."""
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": 1},
        },
    }
    frames = [sse(start, "message_start"), sse({"type": "ping"}, "ping")]
    frames.append(
        sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        )
    )
    for piece in pieces:
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": piece},
        }
        frames.append(sse(delta, "content_block_delta"))
    if cut_after is not None:
        return Reply(events=tuple(frames[: 3 + cut_after]), cut=True)
    if error_event is not None:
        kind, text = error_event
        frames.append(sse({"type": "error", "error": {"type": kind, "message": text}}, "error"))
        return Reply(events=tuple(frames))
    frames.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    for offset, (name, arguments) in enumerate(tool_uses, start=1):
        block = {"type": "tool_use", "id": f"toolu_{offset - 1}", "name": name, "input": {}}
        frames.append(
            sse(
                {"type": "content_block_start", "index": offset, "content_block": block},
                "content_block_start",
            )
        )
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            delta = {"type": "input_json_delta", "partial_json": part}
            frames.append(
                sse(
                    {"type": "content_block_delta", "index": offset, "delta": delta},
                    "content_block_delta",
                )
            )
        frames.append(sse({"type": "content_block_stop", "index": offset}, "content_block_stop"))
    finish = {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if tool_uses else "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": usage[1]},
    }
    frames += [sse(finish, "message_delta"), sse({"type": "message_stop"}, "message_stop")]
    return Reply(events=tuple(frames))


def _default(request: Recorded) -> Reply:
    if request.path != "/v1/messages":
        return error(404, f"unknown path {request.path}", kind="not_found_error")
    if isinstance(request.body, dict) and request.body.get("stream"):
        return stream()
    return message()


def fake_anthropic() -> FakeServer:
    """A fake Anthropic server (not started)."""
    return FakeServer(_default)
