"""W9 ``decide_overhead``: ``adecide()`` with the openai provider against the raw openai SDK
call, both against one local fake OpenAI server that answers at once, measured side by side.

The server runs in a child process (``python -m benchmarks.llm``), so its work does not share
the benchmark's interpreter lock; it answers every ``POST`` with one fixed chat completion whose
content is a valid decision. Both sides send the same request body — the raw call sends the
exact parameters the provider builds for that decision — over their own keep-alive connection.
The calls alternate one by one (and which of a pair goes first alternates too), so a slow phase
of the machine hits both alike. What is left between them is ours: prompt building, the
attempt loop, circuit breaker, conversion of the answer, validation of the decision.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._harness import quantiles

if TYPE_CHECKING:
    from belugaflow.llms._openai import OpenAIChatModel

__all__ = ["serve", "w9"]

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
CHOICES = ("approve", "review", "reject")
CONTEXT = {"order_id": "A-7", "amount": 2500, "customer_tier": "new", "in_stock": True}
ANSWER = {"choice": "review", "reason": "a large first order", "confidence": 0.8}
TARGET_RATIO = 1.10


def _response() -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(ANSWER)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140},
        }
    ).encode()
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class _Answer(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for the SDK: read a request by its
    content-length, answer with the fixed completion."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.response)


def serve() -> None:
    """Serve the fixed completion on 127.0.0.1; print the port; stop when stdin closes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        response = _response()
        server = await loop.create_server(lambda: _Answer(response), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        closed = asyncio.Event()
        # The parent closes stdin (or dies): no server is left behind either way.
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(closed.set)), daemon=True
        ).start()
        async with server:
            await closed.wait()

    asyncio.run(main())


@contextmanager
def fake_openai_server() -> Iterator[str]:
    """Run :func:`serve` in a child process; yield its ``base_url``."""
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.llm"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def _raw_params(model: OpenAIChatModel) -> dict[str, Any]:
    """The very parameters the provider sends for this decision (built once, untimed)."""
    from belugaflow.llms._decide import DEFAULT_INSTRUCTIONS, _prompt, _schema
    from belugaflow.llms._model import ChatRequest

    prompt = _prompt(CONTEXT, CHOICES, DEFAULT_INSTRUCTIONS, "")
    request = ChatRequest(messages=prompt, response_format=_schema(CHOICES))
    return model._params(request, model._mode())


async def _w9(pairs: int, warmup: int) -> list[dict[str, Any]]:
    # Imported here: every workload's interpreter imports this module (through run.py), and
    # the SDK would add to the others' memory figures.
    import openai

    from belugaflow.llms import Decision, adecide, new_chat_model
    from belugaflow.llms._openai import OpenAIChatModel
    from belugaflow.resilience import BreakerRegistry

    with fake_openai_server() as base_url:
        model = new_chat_model("openai", model=MODEL, base_url=base_url, breakers=BreakerRegistry())
        assert isinstance(model, OpenAIChatModel)
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        params = _raw_params(model)
        create = client.chat.completions.create

        async def ours() -> Decision:
            return await adecide(model, CONTEXT, CHOICES)

        decision = await ours()
        assert (decision.choice, decision.provider, decision.fallback_used) == (
            "review",
            "openai",
            False,
        )
        completion = await create(**params)
        assert json.loads(completion.choices[0].message.content or "") == ANSWER

        async def raw() -> object:
            return await create(**params)

        async def timed(
            call: Callable[[], Awaitable[object]], wall: list[int], cpu: list[int]
        ) -> None:
            start, start_cpu = clock(), cpu_clock()
            await call()
            wall.append(clock() - start)
            cpu.append(cpu_clock() - start_cpu)

        clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
        for _ in range(warmup):
            await raw()
            await ours()
        raw_ns: list[int] = []
        ours_ns: list[int] = []
        raw_cpu: list[int] = []
        ours_cpu: list[int] = []
        for pair in range(pairs):
            # Which goes first alternates, so neither always follows the other.
            if pair % 2:
                await timed(ours, ours_ns, ours_cpu)
                await timed(raw, raw_ns, raw_cpu)
            else:
                await timed(raw, raw_ns, raw_cpu)
                await timed(ours, ours_ns, ours_cpu)
        await client.close()
        await model.aclose()

    raw_median, raw_p90 = quantiles(raw_ns, 1e3)
    median, p90 = quantiles(ours_ns, 1e3)
    ratio = median / raw_median
    # Each pair ran back to back, so its difference is the least disturbed by slow phases.
    paired = statistics.median(b - a for a, b in zip(raw_ns, ours_ns, strict=True)) / 1e3
    # CPU time of this process alone: what the client side costs, whatever else the machine
    # runs meanwhile (the server's work is in its own process).
    raw_cpu_median, ours_cpu_median = (statistics.median(cpu) / 1e3 for cpu in (raw_cpu, ours_cpu))
    return [
        {
            "workload": "W9",
            "name": "decide_overhead",
            "median": round(median, 1),
            "p90": round(p90, 1),
            "unit": "us",
            "reps": pairs,
            "raw_median": round(raw_median, 1),
            "raw_p90": round(raw_p90, 1),
            "overhead_us": round(median - raw_median, 1),
            "overhead_paired_us": round(paired, 1),
            "cpu_median": round(ours_cpu_median, 1),
            "raw_cpu_median": round(raw_cpu_median, 1),
            "cpu_overhead_us": round(ours_cpu_median - raw_cpu_median, 1),
            "ratio": round(ratio, 3),
            "target_ratio": TARGET_RATIO,
            "meets_target": ratio <= TARGET_RATIO,
        }
    ]


def w9(quick: bool) -> list[dict[str, Any]]:
    """Run W9: 3,000 alternating pairs of calls (200 with ``quick``)."""
    return asyncio.run(_w9(200 if quick else 3_000, 50 if quick else 300))


if __name__ == "__main__":
    serve()
