"""The anthropic provider against a fake Messages API server: wire format, 529 and other
errors, streaming events, tool use, structured output, and decisions with a fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import BaseModel
from tests.llms.conftest import CHOICES
from tests.llms.fake_anthropic import error, fake_anthropic, message, stream
from tests.llms.fake_server import FakeServer, Reply, running

from belugaflow import CircuitBreaker, RetryPolicy
from belugaflow.config import Secret
from belugaflow.llms import (
    AIMessage,
    HumanMessage,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RulesModel,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    adecide,
    new_chat_model,
)
from belugaflow.llms._anthropic import AnthropicChatModel
from belugaflow.resilience import BreakerRegistry


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A running fake Anthropic server."""
    yield from running(fake_anthropic())


@pytest.fixture
async def model(server: FakeServer, breakers: BreakerRegistry) -> AsyncIterator[AnthropicChatModel]:
    """An anthropic model of the fake server: 3 attempts, its own breaker."""
    llm = AnthropicChatModel(
        model="claude-test", base_url=server.url, breakers=breakers, timeout=10
    )
    yield llm
    await llm.aclose()


async def test_generate_sends_a_messages_request_and_reads_the_answer(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """System messages become ``system``; the answer carries usage and stop reason."""
    server.script(message("approve", usage=(20, 2)))
    answer = await model.agenerate([SystemMessage("be brief"), HumanMessage("ship it?")])
    assert answer == AIMessage(
        "approve",
        usage=Usage(20, 2),
        model="claude-test",
        provider="anthropic",
        finish_reason="end_turn",
    )
    (request,) = server.requests
    assert request.path == "/v1/messages"
    assert request.body == {
        "model": "claude-test",
        "max_tokens": 1024,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "ship it?"}]}],
    }


async def test_tool_turns_are_sent_in_anthropic_format(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """Tool use goes in the assistant turn, tool results in one user turn."""
    await model.agenerate(
        [
            HumanMessage("where are orders 7 and 8?"),
            AIMessage(
                "Looking.",
                tool_calls=(
                    ToolCall("t1", "lookup", {"id": 7}),
                    ToolCall("t2", "lookup", {"id": 8}),
                ),
            ),
            ToolMessage("shipped", tool_call_id="t1"),
            ToolMessage("packed", tool_call_id="t2"),
        ]
    )
    assert server.requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "where are orders 7 and 8?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"id": 7}},
                {"type": "tool_use", "id": "t2", "name": "lookup", "input": {"id": 8}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "shipped"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "packed"},
            ],
        },
    ]


async def test_overloaded_and_rate_limited_calls_are_retried(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """529 overloaded and 429 are retried; the third attempt answers."""
    server.script(
        error(529, "Overloaded", kind="overloaded_error"),
        error(429, "Number of requests has exceeded your rate limit", kind="rate_limit_error"),
        message("ok"),
    )
    assert (await model.agenerate("hi")).content == "ok"
    assert len(server.requests) == 3


async def test_retries_stop_at_max_attempts(model: AnthropicChatModel, server: FakeServer) -> None:
    """Three 529s and no fourth request; the error keeps Anthropic's type and message."""
    server.script(*[error(529, "Overloaded", kind="overloaded_error")] * 5)
    with pytest.raises(ProviderUnavailableError, match="overloaded_error: Overloaded") as info:
        await model.agenerate("hi")
    assert len(server.requests) == 3 and info.value.attempts == 3


@pytest.mark.parametrize(
    ("status", "kind", "text", "error_type"),
    [
        (400, "invalid_request_error", "prompt is too long: 210000 tokens", ProviderRequestError),
        (401, "authentication_error", "invalid x-api-key", ProviderAuthError),
        (403, "permission_error", "no access to this model", ProviderAuthError),
        (404, "not_found_error", "model: claude-9", ProviderRequestError),
    ],
)
async def test_non_retryable_errors_fail_at_once_with_the_provider_message(
    model: AnthropicChatModel,
    server: FakeServer,
    status: int,
    kind: str,
    text: str,
    error_type: type[Exception],
) -> None:
    """4xx errors are sent once and raised with Anthropic's message."""
    server.script(error(status, text, kind=kind))
    with pytest.raises(error_type, match=text) as info:
        await model.agenerate("hi")
    assert len(server.requests) == 1 and info.value.retryable is False  # type: ignore[attr-defined]


async def test_retry_after_is_kept(server: FakeServer) -> None:
    """A 429's Retry-After is the error's retry_after."""
    llm = AnthropicChatModel(
        model="claude-test", base_url=server.url, breaker=None, retry=RetryPolicy.none()
    )
    server.script(error(429, "slow down", kind="rate_limit_error", retry_after=7))
    with pytest.raises(ProviderRateLimitError) as info:
        await llm.agenerate("hi")
    await llm.aclose()
    assert info.value.retry_after == 7


async def test_timeouts_are_retried(server: FakeServer) -> None:
    """An answer slower than the timeout fails the attempt; every attempt is made."""
    llm = AnthropicChatModel(model="claude-test", base_url=server.url, breaker=None, timeout=0.2)
    server.script(*[message("late").slow(5)] * 3)
    with pytest.raises(ProviderTimeoutError):
        await llm.agenerate("hi")
    await llm.aclose()
    assert len(server.requests) == 3


async def test_malformed_answers_are_retried(model: AnthropicChatModel, server: FakeServer) -> None:
    """A cut-off JSON body is a retryable ProviderResponseError."""
    server.script(Reply(200, b'{"id": "msg'), message("fine"))
    assert (await model.agenerate("hi")).content == "fine"
    server.script(*[Reply(200, b'{"id": "msg')] * 3)
    with pytest.raises(ProviderResponseError, match="unreadable answer"):
        await model.agenerate("hi")
    assert len(server.requests) == 5


async def test_stream_yields_text_then_usage_and_stop_reason(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """Text deltas arrive as chunks (pings skipped); the last chunk closes the answer."""
    server.script(stream(["rev", "iew"], usage=(30, 4)))
    chunks = [chunk async for chunk in model.astream("decide")]
    total = sum(chunks[1:], chunks[0]).to_message()
    assert [chunk.content for chunk in chunks] == ["rev", "iew", ""]
    assert total == AIMessage(
        "review",
        usage=Usage(30, 4),
        model="claude-test",
        provider="anthropic",
        finish_reason="end_turn",
    )
    assert server.requests[0].body["stream"] is True


async def test_an_error_event_mid_stream_is_a_retryable_error(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """An ``overloaded_error`` event after some text raises after that text."""
    server.script(stream(["a", "b"], error_event=("overloaded_error", "Overloaded")))
    received: list[str] = []
    with pytest.raises(ProviderUnavailableError, match="Overloaded") as info:
        async for chunk in model.astream("hi"):
            received.append(chunk.content)
    assert received == ["a", "b"] and info.value.retryable


async def test_a_stream_cut_midway_raises_a_connection_error(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """A dropped connection after some text raises ProviderConnectionError."""
    server.script(stream(["a", "b", "c"], cut_after=2))
    received: list[str] = []
    with pytest.raises(ProviderConnectionError, match="RemoteProtocolError"):
        async for chunk in model.astream("hi"):
            received.append(chunk.content)
    assert received == ["a", "b"] and len(server.requests) == 1


class Lookup(BaseModel):
    """Look an order up."""

    id: int


async def test_tool_use_is_sent_and_read(model: AnthropicChatModel, server: FakeServer) -> None:
    """Tools go out with input_schema; tool_use blocks come back as tool calls."""
    bound = model.bind_tools([Lookup], tool_choice="required")
    server.script(message(None, tool_uses=[("Lookup", {"id": 7})]))
    answer = await bound.agenerate("where is 7?")
    assert answer.tool_calls == (ToolCall("toolu_0", "Lookup", {"id": 7}),)
    assert answer.finish_reason == "tool_use"
    body = server.requests[0].body
    assert body["tools"][0]["name"] == "Lookup"
    assert body["tools"][0]["input_schema"]["required"] == ["id"]
    assert body["tool_choice"] == {"type": "any"}
    server.script(stream([], tool_uses=[("Lookup", '{"id": 8}')]))
    chunks = [chunk async for chunk in bound.astream("and 8?")]
    assert chunks[-1].tool_calls == (ToolCall("toolu_0", "Lookup", {"id": 8}),)


async def test_structured_output_uses_output_config(
    model: AnthropicChatModel, server: FakeServer
) -> None:
    """The schema goes out as output_config.format; the answer is validated."""
    server.script(message('{"id": 3}'))
    assert await model.with_structured_output(Lookup).agenerate("pick one") == Lookup(id=3)
    body = server.requests[0].body
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": Lookup.model_json_schema()}
    }


async def test_the_key_is_sent_and_a_missing_key_is_named(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key authenticates requests; without one (or a base_url) building fails."""
    llm = new_chat_model(
        "anthropic", api_key=Secret("sk-ant-1"), base_url=server.url, breaker=None, max_tokens=64
    )
    await llm.agenerate("hi")
    await llm.aclose()
    headers = server.requests[0].headers
    assert "sk-ant-1" in headers.get("authorization", "") + headers.get("x-api-key", "")
    assert server.requests[0].body["max_tokens"] == 64
    assert "sk-ant-1" not in repr(llm)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        AnthropicChatModel(breaker=None)


async def test_the_breaker_opens_on_overload_and_the_rules_decide(
    server: FakeServer, rules: RulesModel
) -> None:
    """Overloaded twice: the breaker opens; further decisions come from the rules, unsent."""
    breaker = CircuitBreaker("anthropic-test", failure_threshold=2)
    llm = AnthropicChatModel(
        model="claude-test", base_url=server.url, breaker=breaker, retry=RetryPolicy.none()
    )
    server.script(*[error(529, "Overloaded", kind="overloaded_error")] * 2)
    order = {"in_stock": True, "amount": 5000}
    decisions = [await adecide(llm, order, CHOICES, fallback=rules) for _ in range(4)]
    await llm.aclose()
    assert len(server.requests) == 2
    assert [d.provider for d in decisions] == ["rules"] * 4
    assert all(d.choice == "review" and d.fallback_used for d in decisions)
    assert "ProviderUnavailableError" in decisions[0].problems[0]
    assert "CircuitOpenError" in decisions[3].problems[0]
