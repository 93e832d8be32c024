"""The ``openai`` provider: OpenAI's chat completions through the official SDK.

Also any OpenAI-compatible server (Ollama, vLLM, LM Studio...) through ``base_url``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Iterable
from typing import Any, Unpack, cast

from belugaflow.config import Secret

from ._errors import (
    ProviderError,
    ProviderResponseError,
    ProviderUnavailableError,
    error_for_status,
)
from ._messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    Message,
    SystemMessage,
    ToolMessage,
    Usage,
)
from ._model import ChatRequest
from ._provider import ProviderModel, ProviderOptions, api_key_for
from ._transport import transport_error

try:
    import openai
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolUnionParam,
    )
    from openai.types.chat.completion_create_params import ResponseFormat
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the 'openai' provider needs the openai SDK; install it with: pip install 'belugaflow[llm]'"
    ) from exc

__all__ = ["DEFAULT_MODEL", "OpenAIChatModel", "create"]

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIChatModel(ProviderModel[openai.AsyncOpenAI]):
    """A chat model served by OpenAI, or by an OpenAI-compatible server at ``base_url``.

    Args:
        model: The model name. Default ``"gpt-4o-mini"``.
        api_key: The API key (a str or :class:`~belugaflow.config.Secret`). Default: the
            ``OPENAI_API_KEY`` environment variable; not needed with a ``base_url``.
        base_url: The server, e.g. ``"http://127.0.0.1:11434/v1"`` for Ollama.
        json_schema: Send structured-output requests as ``response_format`` JSON schema.
            Default true; turn it off for servers that reject that parameter (the schema is in
            the prompt as well).
        **options: Retries, breaker, rate limit, hooks, timeouts: see
            :class:`~belugaflow.llms.ProviderOptions`.

    Raises:
        ValueError: No API key was given or found, and no ``base_url`` either.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        json_schema: bool = True,
        **options: Unpack[ProviderOptions],
    ) -> None:
        key = api_key_for("openai", api_key, base_url=base_url, env_var="OPENAI_API_KEY")
        super().__init__(provider="openai", model=model, base_url=base_url, **options)
        self._api_key = key
        self.json_schema = json_schema

    # -- client --------------------------------------------------------------------------------

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key.get_secret_value(),
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # our RetryPolicy makes the attempts; the SDK's would multiply them
        )

    async def _close_client(self, client: openai.AsyncOpenAI) -> None:
        await client.close()

    # -- one attempt ---------------------------------------------------------------------------

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": _messages(request.messages)}
        if request.tools:
            params["tools"] = _tools(request)
            if request.tool_choice is not None:
                params["tool_choice"] = _tool_choice(request.tool_choice)
        if request.response_format is not None and self.json_schema:
            params["response_format"] = cast(
                ResponseFormat,
                {
                    "type": "json_schema",
                    "json_schema": {
                        "name": request.response_format.name[:64],
                        "schema": request.response_format.schema,
                        "strict": False,
                    },
                },
            )
        if self.max_tokens is not None:
            # OpenAI's newer models want max_completion_tokens; compatible servers know max_tokens.
            key = "max_tokens" if self.base_url else "max_completion_tokens"
            params[key] = self.max_tokens
        if self.temperature is not None:
            params["temperature"] = self.temperature
        return params

    async def _send(self, client: openai.AsyncOpenAI, request: ChatRequest) -> AIMessage:
        try:
            completion: ChatCompletion = await client.chat.completions.create(
                **self._params(request)
            )
        except Exception as error:
            raise self._error(error) from error
        try:
            return self._answer(completion)
        except (AttributeError, TypeError, IndexError) as error:  # valid JSON, wrong shape
            raise self._fail(ProviderResponseError, f"unexpected answer: {error}") from error

    async def _send_stream(
        self, client: openai.AsyncOpenAI, request: ChatRequest
    ) -> AsyncGenerator[AIMessageChunk, None]:
        try:
            chunks = await client.chat.completions.create(
                **self._params(request), stream=True, stream_options={"include_usage": True}
            )
        except Exception as error:
            raise self._error(error) from error
        calls: dict[int, dict[str, str]] = {}
        finish_reason: str | None = None
        usage: Usage | None = None
        model = self.model
        try:
            async with chunks, contextlib.aclosing(_generator(chunks)):
                async for chunk in chunks:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for text in _collect(chunk, calls):
                        yield self._chunk(text, model=model)
                    for choice in chunk.choices:
                        finish_reason = choice.finish_reason or finish_reason
        except Exception as error:
            raise self._error(error) from error
        tool_calls = tuple(
            self._tool_call(call["id"], call["name"], call["arguments"])
            for _, call in sorted(calls.items())
        )
        yield self._chunk(
            "", model=model, tool_calls=tool_calls, usage=usage, finish_reason=finish_reason
        )

    # -- answers -------------------------------------------------------------------------------

    def _answer(self, completion: ChatCompletion) -> AIMessage:
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            raise self._fail(ProviderResponseError, "the answer holds no choices")
        choice = completion.choices[0]
        message = choice.message
        calls = tuple(
            self._tool_call(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls or ()
            if call.type == "function"
        )
        usage = completion.usage
        return AIMessage(
            message.content or "",
            tool_calls=calls,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            model=completion.model or self.model,
            provider=self.provider,
            finish_reason=choice.finish_reason,
        )

    def _error(self, error: Exception) -> ProviderError:
        """Map an SDK (or decoding) error to ours, keeping the provider's message."""
        network = self._network_error(
            error, timeout=openai.APITimeoutError, connection=openai.APIConnectionError
        )
        if network is not None:
            return network
        if isinstance(error, openai.APIStatusError):
            return error_for_status(
                error.status_code,
                error.message,
                provider=self.provider,
                model=self.model,
                headers=error.response.headers,
            )
        if isinstance(error, openai.APIResponseValidationError | ValueError):
            return self._fail(ProviderResponseError, f"unreadable answer: {error}")
        if isinstance(error, openai.APIError):  # an error event inside a stream
            return self._fail(ProviderUnavailableError, error.message)
        transport = transport_error(error, provider=self.provider, model=self.model)
        return transport or self._fail(ProviderError, f"{type(error).__name__}: {error}")


def _collect(chunk: ChatCompletionChunk, calls: dict[int, dict[str, str]]) -> Iterable[str]:
    """The text of a stream chunk; tool-call pieces are gathered into ``calls`` by index."""
    for choice in chunk.choices[:1]:
        delta = choice.delta
        for piece in delta.tool_calls or ():
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            if piece.function is not None:
                call["name"] = piece.function.name or call["name"]
                call["arguments"] += piece.function.arguments or ""
        if delta.content:
            yield delta.content


def _messages(messages: Iterable[Message]) -> list[ChatCompletionMessageParam]:
    result: list[ChatCompletionMessageParam] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            result.append({"role": "system", "content": message.content})
        elif isinstance(message, HumanMessage):
            result.append({"role": "user", "content": message.content})
        elif isinstance(message, ToolMessage):
            result.append(
                {"role": "tool", "content": message.content, "tool_call_id": message.tool_call_id}
            )
        else:
            result.append(_assistant(message))
    return result


def _assistant(message: AIMessage) -> ChatCompletionMessageParam:
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    return {
        "role": "assistant",
        "content": message.content or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ],
    }


def _tools(request: ChatRequest) -> list[ChatCompletionToolUnionParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        }
        for tool in request.tools
    ]


def _tool_choice(choice: str) -> ChatCompletionToolChoiceOptionParam:
    if choice in ("auto", "required", "none"):
        return cast(ChatCompletionToolChoiceOptionParam, choice)
    return {"type": "function", "function": {"name": choice}}


def _generator(stream: openai.AsyncStream[ChatCompletionChunk]) -> AsyncGenerator[Any, None]:
    """The generator under an SDK stream. openai's ``AsyncStream`` holds it in a reference cycle
    with itself (anthropic's SDK copies the stream to avoid that), so a stream left early stays
    suspended until the garbage collector finds it, on whatever thread and event loop run then,
    where closing it fails. Closing it ourselves ends it on its own loop."""
    return cast(AsyncGenerator[Any, None], stream._iterator)


def create(
    *,
    model: str = DEFAULT_MODEL,
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    json_schema: bool = True,
    **options: Unpack[ProviderOptions],
) -> OpenAIChatModel:
    """Build an :class:`OpenAIChatModel` (the registry's factory)."""
    return OpenAIChatModel(
        model=model, api_key=api_key, base_url=base_url, json_schema=json_schema, **options
    )
