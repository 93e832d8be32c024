"""A fake OpenAI chat-completions server: the wire format, scripted per test.

``POST /v1/chat/completions`` answers with what the test queued (see the reply builders
below), else with the text ``"ok"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tests.llms.fake_server import FakeServer, Recorded, Reply, sse

__all__ = ["completion", "error", "fake_openai", "malformed", "stream"]

MODEL = "gpt-test"


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    return {
        "prompt_tokens": usage[0],
        "completion_tokens": usage[1],
        "total_tokens": usage[0] + usage[1],
    }


def _tool_calls(calls: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args),
            },
        }
        for index, (name, args) in enumerate(calls)
    ]


def completion(
    content: str | None = "ok",
    *,
    tool_calls: Sequence[tuple[str, Any]] = (),
    finish_reason: str | None = None,
    usage: tuple[int, int] = (10, 5),
    model: str = MODEL,
) -> Reply:
    """A chat completion with ``content`` and/or tool calls ``(name, arguments)``."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = _tool_calls(tool_calls)
    return Reply.json(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                }
            ],
            "usage": _usage(usage),
        }
    )


def error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    retry_after: float | str | None = None,
) -> Reply:
    """An API error in OpenAI's shape, with a Retry-After header if given."""
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply.json(body, status, headers)


def malformed() -> Reply:
    """A 200 whose JSON body is cut off."""
    return Reply(200, b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess')


def stream(
    pieces: Sequence[str] = ("o", "k"),
    *,
    tool_calls: Sequence[tuple[str, Any]] = (),
    usage: tuple[int, int] | None = (10, 5),
    cut_after: int | None = None,
    finish: bool = True,
    model: str = MODEL,
) -> Reply:
    """A streamed completion: one chunk per text piece, tool calls split in two deltas, then
    the finish reason, a usage chunk and ``[DONE]``. ``cut_after`` drops the connection after
    that many text chunks; ``finish=False`` ends the stream properly but without a finish
    reason."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        )

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += (chunk({"content": piece}) for piece in pieces)
    if cut_after is not None:
        return Reply(events=tuple(frames[: cut_after + 1]), cut=True)
    for index, call in enumerate(_tool_calls(tool_calls)):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        head = {
            **call,
            "function": {"name": call["function"]["name"], "arguments": arguments[:half]},
        }
        frames.append(chunk({"tool_calls": [{"index": index, **head}]}))
        frames.append(
            chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
        )
    if finish:
        frames.append(chunk({}, "tool_calls" if tool_calls else "stop"))
    if usage is not None:
        frames.append(
            sse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": _usage(usage),
                }
            )
        )
    frames.append(sse("[DONE]"))
    return Reply(events=tuple(frames))


def _default(request: Recorded) -> Reply:
    if request.path != "/v1/chat/completions":
        return error(404, f"unknown path {request.path}")
    if isinstance(request.body, dict) and request.body.get("stream"):
        return stream()
    return completion()


def fake_openai() -> FakeServer:
    """A fake OpenAI server (not started)."""
    return FakeServer(_default)
