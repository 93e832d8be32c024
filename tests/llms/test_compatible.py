"""OpenAI-compatible servers that lack JSON-schema output: the ``openai`` provider degrades to
a JSON object, then to the prompt alone, once per endpoint, without retries or the breaker; an
empty answer is an error that says so.

The same suite runs against the project's fake OpenAI server answering as llama.cpp's server
does (it refuses ``json_schema`` with HTTP 500), and — where ``make test-local`` installed
``llama-cpp-python[server]`` — against the real ``llama_cpp.server`` with the packaged gemma
model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from tests.llms.conftest import CHOICES
from tests.llms.fake_openai import completion, error, stream
from tests.llms.fake_server import FakeServer, Recorded, Reply, running

from belugaflow import CircuitBreaker, CircuitState, RetryPolicy
from belugaflow.llms import HumanMessage, ProviderRequestError, ProviderResponseError, adecide
from belugaflow.llms._openai import OpenAIChatModel

LLAMA_REFUSAL = (
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input"
    " should be 'text' or 'json_object'\", 'input': 'json_schema'}]"
)
"""What llama.cpp's server (llama-cpp-python 0.3.36) answers, with HTTP 500, to a
``response_format`` of type ``json_schema``."""

DECISION = {"choice": "approve", "reason": "small order from a known customer", "confidence": 0.9}


def compatible(refused: tuple[str, ...] = ("json_schema",)) -> FakeServer:
    """A fake server that answers as a compatible server: decisions as JSON, and 500 for a
    ``response_format`` type in ``refused``."""

    def answer(request: Recorded) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        kind = (body.get("response_format") or {}).get("type")
        if kind in refused:
            message = LLAMA_REFUSAL if kind == "json_schema" else f"{kind} is not supported"
            return error(500, message, kind="server_error")
        if body.get("stream"):
            return stream()
        return completion(json.dumps(DECISION) if kind or _asks_json(body) else "ok")

    return FakeServer(answer)


def _asks_json(body: dict[str, Any]) -> bool:
    return any("JSON" in str(m.get("content", "")) for m in body.get("messages", ()))


def formats(server: FakeServer) -> list[str | None]:
    """The ``response_format`` type of each request the server got."""
    return [(b.get("response_format") or {}).get("type") for b in server.bodies()]


# --- the suite, on every compatible server ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` with the packaged gemma model on a free port."""
    if (
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llama_cpp.server") is None
    ):
        pytest.skip("llama-cpp-python[server] is not installed (make test-local installs it)")
    from belugaflow.llms._local import _packaged_model  # the local extra's gemma GGUF

    model = _packaged_model()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 1),
         "--chat_format", "gemma"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start (exit {process.poll()})")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(params=["fake", "llama.cpp"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "llama.cpp":
        yield request.getfixturevalue("llama_server")
        return
    for server in running(compatible()):
        yield f"{server.url}/v1"


def compatible_model(base_url: str, **options: Any) -> OpenAIChatModel:
    settings: dict[str, Any] = {"timeout": 60, "temperature": 0.0, "max_tokens": 64}
    settings.update(options)
    return OpenAIChatModel(model="gemma", api_key="x", base_url=base_url, **settings)


async def test_generate_answers_text(base_url: str) -> None:
    answer = await compatible_model(base_url).agenerate(
        [HumanMessage("Say hello to Ada in one short sentence.")]
    )
    assert answer.content.strip()


async def test_stream_answers_text(base_url: str) -> None:
    chunks = [
        chunk
        async for chunk in compatible_model(base_url).astream(
            [HumanMessage("Count from one to three.")]
        )
    ]
    assert "".join(chunk.content for chunk in chunks).strip()


async def test_a_decision_is_valid_with_no_fallback(base_url: str) -> None:
    decision = await adecide(
        compatible_model(base_url),
        {"order_value_usd": 40, "customer": "returning, no complaints"},
        CHOICES,
        instructions="Approve, review or reject this order.",
    )
    assert decision.choice in CHOICES
    assert not decision.fallback_used and decision.provider == "openai"


# --- what degrading costs, on the fake server --------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeServer]:
    yield from running(compatible())


async def test_a_refused_json_schema_costs_one_request_not_retries_or_the_breaker(
    server: FakeServer,
) -> None:
    breaker = CircuitBreaker("compatible", failure_threshold=1)
    model = compatible_model(f"{server.url}/v1", breaker=breaker)
    first = await adecide(model, {"order": 1}, CHOICES)
    assert first.choice == "approve" and not first.fallback_used
    assert formats(server) == ["json_schema", "json_object"]
    schema = server.bodies()[1]["response_format"]["schema"]  # llama.cpp's servers read it
    assert schema["properties"]["choice"]["enum"] == list(CHOICES)
    assert breaker.state is CircuitState.CLOSED
    second = await adecide(compatible_model(f"{server.url}/v1"), {"order": 2}, CHOICES)
    assert second.choice == "approve"
    assert formats(server) == ["json_schema", "json_object", "json_object"]  # remembered


async def test_a_server_without_json_output_gets_the_prompt_alone() -> None:
    for server in running(compatible(refused=("json_schema", "json_object"))):
        decision = await adecide(compatible_model(f"{server.url}/v1"), {"order": 3}, CHOICES)
        assert decision.choice == "approve" and not decision.fallback_used
        assert formats(server) == ["json_schema", "json_object", None]


async def test_a_fixed_mode_is_used_as_given(server: FakeServer) -> None:
    model = compatible_model(f"{server.url}/v1", structured_output="json_object")
    assert (await adecide(model, {"order": 4}, CHOICES)).choice == "approve"
    assert formats(server) == ["json_object"]


async def test_a_fixed_mode_the_server_refuses_fails_once_saying_what_to_change(
    server: FakeServer,
) -> None:
    model = compatible_model(f"{server.url}/v1", structured_output="json_schema")
    with pytest.raises(ProviderRequestError, match="structured_output") as caught:
        await model.with_structured_output(Answer).agenerate([HumanMessage("hi")])
    assert "Input should be 'text' or 'json_object'" in str(caught.value)
    assert formats(server) == ["json_schema"]  # not retried


class Answer(BaseModel):
    choice: str


async def test_an_empty_answer_is_an_error_that_says_why(server: FakeServer) -> None:
    server.script(completion("", usage=(12, 0)), completion("", usage=(12, 0)))
    model = compatible_model(f"{server.url}/v1", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ProviderResponseError, match=r"answered nothing .*'stop', 0 completion"):
        await model.agenerate([HumanMessage("hi")])


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="structured_output must be one of auto"):
        OpenAIChatModel(base_url="http://127.0.0.1:9/v1", structured_output="xml")  # type: ignore[arg-type]
