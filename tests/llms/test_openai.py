"""The openai provider against a fake OpenAI server: wire format, retries, errors, streaming,
tool calls, structured output, batches, the sync API and observability."""

from __future__ import annotations

import asyncio
import gc
import inspect
import socket
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from tests.llms.fake_openai import completion, error, fake_openai, malformed, stream
from tests.llms.fake_server import FakeServer, Reply, running

from belugaflow import CircuitBreaker, CircuitOpenError, RetryPolicy
from belugaflow.config import Secret
from belugaflow.llms import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    InvalidOutputError,
    LLMCall,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimiter,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
)
from belugaflow.llms._openai import OpenAIChatModel
from belugaflow.resilience import BreakerRegistry
from belugaflow.testing import FakeClock


def model_of(server: FakeServer, **options: object) -> OpenAIChatModel:
    """An openai model of ``server`` without a breaker, unless options say otherwise."""
    settings: dict[str, object] = {"breaker": None, "timeout": 10}
    settings.update(options)
    return OpenAIChatModel(model="gpt-test", base_url=f"{server.url}/v1", **settings)  # type: ignore[arg-type]


class Lookup(BaseModel):
    """Look an order up by its id."""

    order_id: int


# --- one call --------------------------------------------------------------------------------


async def test_generate_returns_the_answer_with_usage_and_provenance(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """An answer carries its text, token usage, model, provider and finish reason."""
    openai_server.script(completion("approve", usage=(12, 3)))
    answer = await openai_model.agenerate("Should we ship?")
    assert answer == AIMessage(
        "approve",
        usage=Usage(12, 3),
        model="gpt-test",
        provider="openai",
        finish_reason="stop",
    )
    (request,) = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-test"
    assert request.body["messages"] == [{"role": "user", "content": "Should we ship?"}]


async def test_every_message_kind_is_sent_in_openai_format(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """System, human, AI (with tool calls) and tool messages map to OpenAI's roles."""
    await openai_model.agenerate(
        [
            SystemMessage("be brief"),
            HumanMessage("where is order 7?"),
            AIMessage("", tool_calls=(ToolCall("call_1", "lookup", {"order_id": 7}),)),
            ToolMessage('{"status": "shipped"}', tool_call_id="call_1"),
        ]
    )
    assert openai_server.requests[0].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "where is order 7?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"order_id": 7}'},
                }
            ],
        },
        {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "call_1"},
    ]


async def test_settings_are_sent(openai_server: FakeServer) -> None:
    """max_tokens and temperature reach the server (max_tokens for compatible servers)."""
    model = model_of(openai_server, max_tokens=50, temperature=0.0)
    await model.agenerate("hi")
    await model.aclose()
    body = openai_server.requests[0].body
    assert body["max_tokens"] == 50 and body["temperature"] == 0.0


async def test_bad_messages_are_rejected_before_any_request(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """A non-message in the list fails with its index, and nothing is sent."""
    with pytest.raises(TypeError, match="message 1 is a dict"):
        await openai_model.agenerate([HumanMessage("hi"), {"role": "user"}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no messages"):
        await openai_model.agenerate([])
    assert openai_server.requests == []


# --- retries ---------------------------------------------------------------------------------


async def test_retryable_errors_are_retried(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """A 429 and a 500 are retried; the third attempt answers."""
    openai_server.script(
        error(429, "slow down", retry_after=0), error(500, "oops"), completion("ok")
    )
    answer = await openai_model.agenerate("hi")
    assert answer.content == "ok"
    assert len(openai_server.requests) == 3


async def test_retries_stop_at_max_attempts(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Three failed attempts, no fourth: the last error says how many attempts were made."""
    openai_server.script(*[error(503, "overloaded, try later")] * 5)
    with pytest.raises(ProviderUnavailableError) as info:
        await openai_model.agenerate("hi")
    assert len(openai_server.requests) == 3
    assert info.value.attempts == 3 and info.value.retryable
    assert "overloaded, try later" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)


async def test_the_sdk_does_not_retry_on_its_own(openai_server: FakeServer) -> None:
    """With retries off, one failure is one request: the SDK's own retries are disabled."""
    model = model_of(openai_server, retry=RetryPolicy.none())
    openai_server.script(error(500, "oops"), error(500, "oops"))
    with pytest.raises(ProviderUnavailableError):
        await model.agenerate("hi")
    await model.aclose()
    assert len(openai_server.requests) == 1
    assert openai_server.requests[0].headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "This model's maximum context length is 8192 tokens", ProviderRequestError),
        (401, "Incorrect API key provided", ProviderAuthError),
        (403, "You are not allowed to use this model", ProviderAuthError),
        (404, "The model `gpt-9` does not exist", ProviderRequestError),
        (422, "Unprocessable entity", ProviderRequestError),
    ],
)
async def test_non_retryable_errors_fail_at_once_with_the_provider_message(
    openai_model: OpenAIChatModel,
    openai_server: FakeServer,
    status: int,
    message: str,
    kind: type[Exception],
) -> None:
    """4xx errors are sent once and raised with the provider's own message."""
    openai_server.script(error(status, message))
    with pytest.raises(kind) as info:
        await openai_model.agenerate("hi")
    assert len(openai_server.requests) == 1
    assert message in str(info.value) and f"HTTP {status}" in str(info.value)
    assert info.value.retryable is False  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after": "1.5"}, 1.5), ({"retry-after-ms": "250"}, 0.25)],
)
async def test_retry_after_is_read_from_the_response(
    openai_server: FakeServer, headers: dict[str, str], seconds: float
) -> None:
    """A 429's Retry-After (seconds or milliseconds) is kept on the error as retry_after."""
    model = model_of(openai_server, retry=RetryPolicy.none())
    body = error(429, "rate limited").body
    openai_server.script(Reply(429, body, headers))
    with pytest.raises(ProviderRateLimitError) as info:
        await model.agenerate("hi")
    await model.aclose()
    assert info.value.retry_after == seconds


async def test_a_retry_after_beyond_the_time_budget_ends_the_retries(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Retry-After is honoured: asked to wait an hour, the model gives up instead of retrying
    sooner (the default policy allows 60 s per call)."""
    openai_server.script(error(429, "come back in an hour", retry_after=3600))
    with pytest.raises(ProviderRateLimitError, match="come back in an hour"):
        await openai_model.agenerate("hi")
    assert len(openai_server.requests) == 1


async def test_x_should_retry_false_is_obeyed(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """A 500 that says x-should-retry: false is not retried."""
    openai_server.script(Reply(500, error(500, "fatal").body, {"x-should-retry": "false"}))
    with pytest.raises(ProviderUnavailableError) as info:
        await openai_model.agenerate("hi")
    assert len(openai_server.requests) == 1 and info.value.retryable is False


async def test_timeouts_are_retried_then_raised(openai_server: FakeServer) -> None:
    """An answer slower than the timeout fails the attempt; every attempt is made."""
    model = model_of(openai_server, timeout=0.2)
    openai_server.script(*[completion("late").slow(5)] * 3)
    with pytest.raises(ProviderTimeoutError, match=r"no answer within 0.2 s") as info:
        await model.agenerate("hi")
    await model.aclose()
    assert len(openai_server.requests) == 3 and info.value.attempts == 3


async def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    """A closed port gives ProviderConnectionError after every attempt."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIChatModel(model="gpt-test", base_url=f"http://127.0.0.1:{port}/v1", breaker=None)
    with pytest.raises(ProviderConnectionError) as info:
        await model.agenerate("hi")
    await model.aclose()
    assert info.value.retryable and info.value.attempts == 3


async def test_malformed_json_is_retried(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """A cut-off JSON body is a retryable ProviderResponseError."""
    openai_server.script(malformed(), completion("fine"))
    assert (await openai_model.agenerate("hi")).content == "fine"
    openai_server.script(*[malformed()] * 3)
    with pytest.raises(ProviderResponseError, match="unreadable answer"):
        await openai_model.agenerate("hi")
    assert len(openai_server.requests) == 5


async def test_a_non_json_answer_is_a_response_error(openai_server: FakeServer) -> None:
    """An HTML page instead of a completion is not mistaken for an answer."""
    model = model_of(openai_server, retry=RetryPolicy.none())
    openai_server.script(Reply(200, b"<html>proxy error</html>", {"content-type": "text/html"}))
    with pytest.raises(ProviderResponseError, match="no choices"):
        await model.agenerate("hi")
    await model.aclose()


async def test_valid_json_of_the_wrong_shape_is_a_response_error(openai_server: FakeServer) -> None:
    """A JSON object that is no completion is reported as such, not as a crash."""
    model = model_of(openai_server, retry=RetryPolicy.none())
    openai_server.script(
        Reply.json({"id": "chatcmpl-1", "object": "chat.completion"}),
        Reply.json({"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "stop"}]}),
    )
    with pytest.raises(ProviderResponseError, match="no choices"):
        await model.agenerate("hi")
    with pytest.raises(ProviderResponseError, match="unexpected answer"):
        await model.agenerate("hi")
    await model.aclose()


# --- circuit breaker -------------------------------------------------------------------------


async def test_an_open_breaker_rejects_calls_without_sending_them(
    openai_server: FakeServer,
) -> None:
    """After two failed calls the breaker opens; the third call fails at once, unsent.
    Request errors (4xx) do not count as failures."""
    breaker = CircuitBreaker("openai-test", failure_threshold=2, excluded=(ProviderRequestError,))
    model = model_of(openai_server, breaker=breaker, retry=RetryPolicy.none())
    openai_server.script(
        error(400, "bad"), error(400, "bad"), error(500, "down"), error(500, "down")
    )
    for kind in (ProviderRequestError, ProviderRequestError, ProviderUnavailableError):
        with pytest.raises(kind):
            await model.agenerate("hi")
    assert breaker.failure_count == 1
    with pytest.raises(ProviderUnavailableError):
        await model.agenerate("hi")
    with pytest.raises(CircuitOpenError):
        await model.agenerate("hi")
    await model.aclose()
    assert len(openai_server.requests) == 4


async def test_models_of_one_endpoint_share_one_breaker(
    openai_server: FakeServer, breakers: BreakerRegistry
) -> None:
    """The default breaker is one per provider and endpoint, found in the registry."""
    one = OpenAIChatModel(model="a", base_url=f"{openai_server.url}/v1", breakers=breakers)
    two = OpenAIChatModel(model="b", base_url=f"{openai_server.url}/v1", breakers=breakers)
    assert one.breaker is two.breaker is not None
    assert one.breaker.name == f"llm.openai@{openai_server.url.removeprefix('http://')}"


# --- streaming -------------------------------------------------------------------------------


async def test_stream_yields_text_then_usage_and_finish_reason(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Chunks arrive piece by piece and add up to the whole answer."""
    openai_server.script(stream(["app", "rove"], usage=(7, 2)))
    chunks = [chunk async for chunk in openai_model.astream("decide")]
    assert [chunk.content for chunk in chunks] == ["app", "rove", ""]
    total = sum(chunks[1:], chunks[0])
    assert total.to_message() == AIMessage(
        "approve", usage=Usage(7, 2), model="gpt-test", provider="openai", finish_reason="stop"
    )
    body = openai_server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_a_failure_before_the_first_chunk_is_retried(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Opening a stream is retried like a call."""
    openai_server.script(error(429, "busy", retry_after=0), stream(["ok"]))
    chunks = [chunk async for chunk in openai_model.astream("hi")]
    assert "".join(chunk.content for chunk in chunks) == "ok"
    assert len(openai_server.requests) == 2


async def test_a_stream_cut_midway_raises_after_its_chunks(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Chunks already given out stay given; the cut raises a retryable error, not retried
    inside the stream."""
    openai_server.script(stream(["a", "b", "c"], cut_after=2))
    received: list[str] = []
    with pytest.raises(ProviderConnectionError) as info:
        async for chunk in openai_model.astream("hi"):
            received.append(chunk.content)
    assert received == ["a", "b"]
    assert info.value.retryable and len(openai_server.requests) == 1


async def test_a_stream_without_finish_reason_is_an_error(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """A stream that ends cleanly but before the model finished is not a full answer."""
    openai_server.script(stream(["a"], finish=False))
    with pytest.raises(ProviderResponseError, match="before the model finished"):
        async for _ in openai_model.astream("hi"):
            pass


# --- tools -----------------------------------------------------------------------------------


async def test_bound_tools_are_sent_and_tool_calls_read(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """bind_tools sends the tools' schemas; the answer's tool calls come back decoded."""
    model = openai_model.bind_tools([Lookup], tool_choice="Lookup")
    openai_server.script(completion(None, tool_calls=[("Lookup", {"order_id": 7})]))
    answer = await model.agenerate("where is order 7?")
    assert answer.tool_calls == (ToolCall("call_0", "Lookup", {"order_id": 7}),)
    assert answer.finish_reason == "tool_calls" and answer.content == ""
    body = openai_server.requests[0].body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Lookup",
                "description": "Look an order up by its id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"title": "Order Id", "type": "integer"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Lookup"}}
    await openai_model.agenerate("hi")  # the model tools were bound to is unchanged
    assert "tools" not in openai_server.requests[1].body


async def test_streamed_tool_calls_are_assembled(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Tool-call deltas are put together and delivered whole in the last chunk."""
    model = openai_model.bind_tools([Lookup])
    openai_server.script(stream([], tool_calls=[("Lookup", {"order_id": 7})]))
    chunks = [chunk async for chunk in model.astream("where is order 7?")]
    assert chunks[-1].tool_calls == (ToolCall("call_0", "Lookup", {"order_id": 7}),)
    assert chunks[-1].finish_reason == "tool_calls"


async def test_tool_arguments_that_are_not_json_are_invalid_output(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Arguments the model garbled raise InvalidOutputError naming the tool, unretried."""
    openai_server.script(completion(None, tool_calls=[("Lookup", "{order_id: 7")]))
    with pytest.raises(InvalidOutputError, match="'Lookup'") as info:
        await openai_model.bind_tools([Lookup]).agenerate("hi")
    assert info.value.output == "{order_id: 7" and len(openai_server.requests) == 1


def test_bind_tools_checks_its_input() -> None:
    """Duplicate tool names and a tool_choice naming no tool are rejected."""
    model = OpenAIChatModel(api_key="sk-test", breaker=None)
    with pytest.raises(ValueError, match="unique"):
        model.bind_tools([Lookup, Lookup])
    with pytest.raises(ValueError, match="tool_choice 'Search'"):
        model.bind_tools([Lookup], tool_choice="Search")
    with pytest.raises(TypeError, match="expected a Tool or a pydantic model class"):
        model.bind_tools([len])  # type: ignore[list-item]


# --- structured output -----------------------------------------------------------------------


class Verdict(BaseModel):
    """A labelled score."""

    label: str
    score: float


async def test_structured_output_asks_for_the_schema_and_validates(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """The schema goes out as response_format; the answer comes back as the model class."""
    structured = openai_model.with_structured_output(Verdict)
    openai_server.script(completion('```json\n{"label": "spam", "score": 0.9}\n```'))
    assert await structured.agenerate("classify") == Verdict(label="spam", score=0.9)
    body = openai_server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "Verdict"
    assert body["response_format"]["json_schema"]["schema"] == Verdict.model_json_schema()

    openai_server.script(completion('{"label": "spam"}'))
    with pytest.raises(InvalidOutputError, match="score: Field required") as info:
        await structured.agenerate("classify")
    assert info.value.output == '{"label": "spam"}'


async def test_json_schema_can_be_left_out_for_servers_that_reject_it(
    openai_server: FakeServer,
) -> None:
    """json_schema=False keeps response_format out; the schema stays in the prompt."""
    model = model_of(openai_server, json_schema=False)
    openai_server.script(completion('{"label": "ham", "score": 0.1}'))
    assert (await model.with_structured_output(Verdict).agenerate("x")).label == "ham"
    await model.aclose()
    body = openai_server.requests[0].body
    assert "response_format" not in body
    assert '"score"' in body["messages"][0]["content"]


# --- batches ---------------------------------------------------------------------------------


async def test_batch_returns_one_result_or_error_per_item(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """A failing item holds its error; the others their answers."""
    openai_server.script(completion("one"), error(400, "too long"), completion("three"))
    results = await openai_model.abatch(["a", "b", "c"], max_concurrency=1)
    assert isinstance(results[0], AIMessage) and results[0].content == "one"
    assert isinstance(results[1], ProviderRequestError) and "too long" in str(results[1])
    assert isinstance(results[2], AIMessage) and results[2].content == "three"


async def test_batch_runs_items_concurrently(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """Without a limit every item is sent; each gets its own answer."""
    results = await openai_model.abatch([f"q{i}" for i in range(5)])
    assert all(isinstance(result, AIMessage) for result in results)
    sent = sorted(request.body["messages"][0]["content"] for request in openai_server.requests)
    assert sent == [f"q{i}" for i in range(5)]


# --- the sync API ----------------------------------------------------------------------------


@pytest.fixture
def sync_server() -> Iterator[FakeServer]:
    """A fake OpenAI server for sync tests."""
    yield from running(fake_openai())


def test_sync_generate_stream_and_batch(sync_server: FakeServer) -> None:
    """The sync wrappers work from plain code and share one connection pool."""
    with model_of(sync_server) as model:
        assert model.generate("hi").content == "ok"
        assert model.invoke("hi").content == "ok"
        sync_server.script(stream(["a", "b"]))
        assert [chunk.content for chunk in model.stream("hi")] == ["a", "b", ""]
        sync_server.script(completion("x"), error(404, "no such model"))
        results = model.batch(["1", "2"], max_concurrency=1)
    assert isinstance(results[0], AIMessage) and isinstance(results[1], ProviderRequestError)


def test_a_sync_stream_left_early_is_closed(sync_server: FakeServer) -> None:
    """Breaking out of a sync stream closes it; the model still works afterwards."""
    with model_of(sync_server) as model:
        sync_server.script(stream(["a", "b", "c"]))
        for chunk in model.stream("hi"):
            assert chunk.content == "a"
            break
        assert model.generate("again").content == "ok"


def test_a_stream_left_early_leaves_nothing_to_the_garbage_collector(
    sync_server: FakeServer,
) -> None:
    """The SDK's stream generators end with the stream, on its own loop: none is left
    suspended for the garbage collector to close later, from whatever thread it runs on."""
    with model_of(sync_server) as model:
        sync_server.script(stream(["a", "b", "c"]))
        for _ in model.stream("hi"):
            break
        suspended = [
            item
            for item in gc.get_objects()
            if inspect.isasyncgen(item)
            and item.ag_frame is not None
            and item.__qualname__ == "AsyncStream.__stream__"
        ]
    assert suspended == []


def test_clients_close_when_their_event_loop_shuts_down(sync_server: FakeServer) -> None:
    """A model used from several asyncio.run() calls keeps no client (nor socket) of a loop
    that has finished."""
    model = model_of(sync_server)
    for _ in range(3):
        assert asyncio.run(model.agenerate("hi")).content == "ok"
    assert len(model._clients) == 0


async def test_the_sync_api_refuses_to_block_a_running_loop(
    openai_model: OpenAIChatModel,
) -> None:
    """Inside an event loop, generate() says to use agenerate() instead."""
    with pytest.raises(RuntimeError, match="agenerate"):
        openai_model.generate("hi")


# --- keys and observability ------------------------------------------------------------------


def test_a_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key (argument or OPENAI_API_KEY) and without base_url, building fails."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIChatModel(breaker=None)


async def test_the_api_key_is_sent_but_never_shown(openai_server: FakeServer) -> None:
    """The key goes into the Authorization header and nowhere else."""
    events: list[LLMCall] = []
    model = model_of(openai_server, api_key=Secret("sk-secret-123"), hooks=[events.append])
    await model.agenerate("hi")
    openai_server.script(error(401, "Incorrect API key provided"))
    with pytest.raises(ProviderAuthError) as info:
        await model.agenerate("hi")
    await model.aclose()
    assert openai_server.requests[0].headers["authorization"] == "Bearer sk-secret-123"
    shown = [repr(model), str(info.value), *map(repr, events), *(str(e.attributes) for e in events)]
    assert not [text for text in shown if "sk-secret-123" in text]


async def test_each_call_emits_one_event_with_genai_attributes(
    openai_server: FakeServer,
) -> None:
    """Hooks get provider, model, tokens, outcome and attempts, under GenAI names; no
    prompt or answer unless asked for."""
    events: list[LLMCall] = []
    model = model_of(openai_server, hooks=[events.append])
    openai_server.script(error(500, "oops"), completion("secret answer", usage=(9, 4)))
    await model.agenerate("secret prompt")
    openai_server.script(error(400, "bad"))
    with pytest.raises(ProviderRequestError):
        await model.agenerate("hi")
    await model.aclose()
    ok, failed = events
    assert ok.outcome == "ok" and ok.attempts == 2 and not ok.streaming
    attributes = ok.attributes
    assert attributes["gen_ai.system"] == attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.response.model"] == "gpt-test"
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert attributes["gen_ai.usage.output_tokens"] == 4
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert ok.duration > 0 and "gen_ai.client.operation.duration" not in attributes
    assert "secret" not in repr(ok) + str(attributes)
    assert failed.outcome == "error" and failed.attributes["error.type"] == "ProviderRequestError"


async def test_content_is_captured_only_when_asked(openai_server: FakeServer) -> None:
    """capture_content=True puts prompt and answer into the event."""
    events: list[LLMCall] = []
    model = model_of(openai_server, hooks=[events.append], capture_content=True)
    await model.agenerate("the prompt")
    chunks = [chunk async for chunk in model.astream("streamed prompt")]
    await model.aclose()
    assert "the prompt" in str(events[0].attributes["gen_ai.input.messages"])
    assert '"content": "ok"' in str(events[0].attributes["gen_ai.output.messages"])
    assert events[1].streaming and events[1].output_message is not None
    assert events[1].output_message.content == "".join(c.content for c in chunks)


async def test_a_failing_hook_does_not_fail_the_call(openai_server: FakeServer) -> None:
    """An exception in a hook is logged and ignored."""

    def broken(event: LLMCall) -> None:
        raise RuntimeError("monitoring is down")

    model = model_of(openai_server, hooks=[broken])
    assert (await model.agenerate("hi")).content == "ok"
    await model.aclose()


async def test_calls_go_through_the_rate_limiter(openai_server: FakeServer) -> None:
    """Each attempt takes one request; the tokens reserved are corrected to the real usage."""
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=600, clock=clock)
    model = model_of(openai_server, rate_limiter=limiter)
    openai_server.script(completion("ok", usage=(10, 5)))
    await model.agenerate("hi")
    await model.aclose()
    # The call used 15 of the 600 tokens: 585 are left this minute, and not one more.
    assert limiter.reserve(585) == 0.0
    assert limiter.reserve(1) > 0.0


def test_chunks_add_up() -> None:
    """Adding chunks concatenates text and tool calls and sums usage."""
    first = AIMessageChunk("a", model="m", provider="p")
    last = AIMessageChunk("b", usage=Usage(1, 2), finish_reason="stop")
    assert (first + last).to_message() == AIMessage(
        "ab", usage=Usage(1, 2), model="m", provider="p", finish_reason="stop"
    )
