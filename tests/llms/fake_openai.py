"""A fake OpenAI server: the chat-completions and embeddings wire formats, scripted per test.

``POST /v1/chat/completions`` answers with what the test queued (see the reply builders
below), else with the text ``"ok"``. ``POST /v1/embeddings`` answers likewise, else with
:func:`sample_vector` of each input, as many dimensions wide as the request's ``dimensions``
(default :data:`EMBEDDING_WIDTH`), base64-encoded when the request asks for that (the SDK does
by default).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from typing import Any

from tests.llms.fake_server import FakeServer, Recorded, Reply, sse

__all__ = [
    "EMBEDDING_WIDTH",
    "completion",
    "embeddings",
    "error",
    "fake_openai",
    "malformed",
    "sample_vector",
    "stream",
]

MODEL = "gpt-test"
EMBEDDING_WIDTH = 8


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


def sample_vector(text: str, width: int = EMBEDDING_WIDTH) -> list[float]:
    """The default embedding of ``text``: its length, then 1, 2, 3... (not of unit length, so
    a test sees the client normalize it)."""
    return [float(len(text)), *(float(i) for i in range(1, width))]


def embeddings(
    vectors: Sequence[Sequence[float]],
    *,
    encoding: str = "float",
    order: Sequence[int] | None = None,
    model: str = "embed-test",
) -> Reply:
    """An embeddings answer holding ``vectors`` (``encoding`` ``"float"`` or ``"base64"``),
    listed in ``order`` of their indexes when given (the API keys each by its index)."""

    def item(index: int) -> dict[str, Any]:
        vector: Any = list(vectors[index])
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return {"object": "embedding", "index": index, "embedding": vector}

    indexes = range(len(vectors)) if order is None else order
    tokens = 3 * len(vectors)
    return Reply.json(
        {
            "object": "list",
            "data": [item(index) for index in indexes],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _embeddings_for(request: Recorded) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    texts = body.get("input", [])
    texts = [texts] if isinstance(texts, str) else texts
    width = body.get("dimensions") or EMBEDDING_WIDTH
    vectors = [sample_vector(text, width) for text in texts]
    return embeddings(vectors, encoding=body.get("encoding_format") or "float")


def _default(request: Recorded) -> Reply:
    if request.path == "/v1/embeddings":
        return _embeddings_for(request)
    if request.path != "/v1/chat/completions":
        return error(404, f"unknown path {request.path}")
    if isinstance(request.body, dict) and request.body.get("stream"):
        return stream()
    return completion()


def fake_openai() -> FakeServer:
    """A fake OpenAI server (not started)."""
    return FakeServer(_default)
