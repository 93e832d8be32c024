"""The ``anthropic`` provider: Anthropic's Messages API through the official SDK."""

from __future__ import annotations

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
    ToolCall,
    ToolMessage,
    Usage,
)
from ._model import ChatRequest
from ._provider import ProviderModel, ProviderOptions, api_key_for
from ._transport import transport_error

try:
    import anthropic
    from anthropic.types import (
        ContentBlockParam,
        MessageParam,
        ToolChoiceParam,
        ToolParam,
    )
    from anthropic.types import (
        Message as AnthropicMessage,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the 'anthropic' provider needs the anthropic SDK; install it with:"
        " pip install 'belugaflow[llm]'"
    ) from exc

__all__ = ["DEFAULT_MODEL", "AnthropicChatModel", "create"]

DEFAULT_MODEL = "claude-haiku-4-5"
DEFAULT_MAX_TOKENS = 1024
"""Anthropic requires a limit on every call; this one suits decisions and short answers."""


# The HTTP status that matches an error type, for errors sent inside a 200 stream.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicChatModel(ProviderModel[anthropic.AsyncAnthropic]):
    """A chat model served by Anthropic (or a server speaking its Messages API).

    Args:
        model: The model name. Default ``"claude-haiku-4-5"``.
        api_key: The API key (a str or :class:`~belugaflow.config.Secret`). Default: the
            ``ANTHROPIC_API_KEY`` environment variable; not needed with a ``base_url``.
        base_url: Another endpoint (a proxy, a test server).
        json_schema: Send structured-output requests as ``output_config`` JSON schema.
            Default true; turn it off for models without structured outputs (the schema is in
            the prompt as well).
        **options: Retries, breaker, rate limit, hooks, timeouts: see
            :class:`~belugaflow.llms.ProviderOptions`. ``max_tokens`` defaults to 1024 here,
            because Anthropic requires one.

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
        options.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        key = api_key_for("anthropic", api_key, base_url=base_url, env_var="ANTHROPIC_API_KEY")
        super().__init__(provider="anthropic", model=model, base_url=base_url, **options)
        self._api_key = key
        self.json_schema = json_schema

    # -- client --------------------------------------------------------------------------------

    def _new_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self._api_key.get_secret_value(),
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # our RetryPolicy makes the attempts; the SDK's would multiply them
            open_telemetry=False,  # calls are observed through our hooks, once
        )

    async def _close_client(self, client: anthropic.AsyncAnthropic) -> None:
        await client.close()

    # -- one attempt ---------------------------------------------------------------------------

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = _messages(request.messages)
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = [
                cast(
                    ToolParam,
                    {
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": dict(tool.parameters),
                    },
                )
                for tool in request.tools
            ]
            if request.tool_choice is not None:
                params["tool_choice"] = _tool_choice(request.tool_choice)
        if request.response_format is not None and self.json_schema:
            params["output_config"] = {
                "format": {"type": "json_schema", "schema": request.response_format.schema}
            }
        if self.temperature is not None:
            params["temperature"] = self.temperature
        return params

    async def _send(self, client: anthropic.AsyncAnthropic, request: ChatRequest) -> AIMessage:
        try:
            message = await client.messages.create(**self._params(request))
        except Exception as error:
            raise self._error(error) from error
        try:
            return self._answer(message)
        except (AttributeError, TypeError, IndexError) as error:  # valid JSON, wrong shape
            raise self._fail(ProviderResponseError, f"unexpected answer: {error}") from error

    async def _send_stream(
        self, client: anthropic.AsyncAnthropic, request: ChatRequest
    ) -> AsyncGenerator[AIMessageChunk, None]:
        try:
            events = await client.messages.create(**self._params(request), stream=True)
        except Exception as error:
            raise self._error(error) from error
        tools: dict[int, dict[str, str]] = {}
        model, stop_reason = self.model, None
        input_tokens = output_tokens = 0
        try:
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        model = event.message.model or model
                        input_tokens = event.message.usage.input_tokens
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            tools[event.index] = {"id": block.id, "name": block.name, "json": ""}
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            yield self._chunk(delta.text, model=model)
                        elif delta.type == "input_json_delta" and event.index in tools:
                            tools[event.index]["json"] += delta.partial_json
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        output_tokens = event.usage.output_tokens
                        input_tokens = event.usage.input_tokens or input_tokens
        except Exception as error:
            raise self._error(error) from error
        calls = tuple(
            self._tool_call(tool["id"], tool["name"], tool["json"])
            for _, tool in sorted(tools.items())
        )
        yield self._chunk(
            "",
            model=model,
            tool_calls=calls,
            usage=Usage(input_tokens, output_tokens),
            finish_reason=stop_reason,
        )

    # -- answers -------------------------------------------------------------------------------

    def _answer(self, message: AnthropicMessage) -> AIMessage:
        if not isinstance(message, AnthropicMessage):
            raise self._fail(ProviderResponseError, "the answer is not a message")
        text = "".join(block.text for block in message.content if block.type == "text")
        calls = tuple(
            ToolCall(block.id, block.name, dict(block.input))
            for block in message.content
            if block.type == "tool_use"
        )
        usage = message.usage
        return AIMessage(
            text,
            tool_calls=calls,
            usage=Usage(usage.input_tokens, usage.output_tokens),
            model=message.model or self.model,
            provider=self.provider,
            finish_reason=message.stop_reason,
        )

    def _error(self, error: Exception) -> ProviderError:
        """Map an SDK (or decoding) error to ours, keeping the provider's message."""
        network = self._network_error(
            error, timeout=anthropic.APITimeoutError, connection=anthropic.APIConnectionError
        )
        if network is not None:
            return network
        if isinstance(error, anthropic.APIStatusError):
            kind = error.type
            message = (
                f"{kind}: {error.api_message}" if kind and error.api_message else error.message
            )
            # An error event inside a stream arrives with the stream's status, 200.
            status = error.status_code
            if status < 400:
                status = _STATUS_OF_TYPE.get(kind or "", 500)
            return error_for_status(
                status,
                message,
                provider=self.provider,
                model=self.model,
                headers=error.response.headers,
            )
        if isinstance(error, anthropic.APIResponseValidationError | ValueError):
            return self._fail(ProviderResponseError, f"unreadable answer: {error}")
        if isinstance(error, anthropic.APIError):
            return self._fail(ProviderUnavailableError, error.message)
        transport = transport_error(error, provider=self.provider, model=self.model)
        return transport or self._fail(ProviderError, f"{type(error).__name__}: {error}")


def _messages(messages: Iterable[Message]) -> tuple[str, list[MessageParam]]:
    """The system prompt, and the turns with consecutive same-role turns merged (Anthropic
    wants user and assistant to alternate; tool results travel in user turns)."""
    system: list[str] = []
    turns: list[tuple[str, list[ContentBlockParam]]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            system.append(message.content)
            continue
        role, blocks = _turn(message)
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    params = [cast(MessageParam, {"role": role, "content": blocks}) for role, blocks in turns]
    return "\n\n".join(system), params


def _turn(message: HumanMessage | AIMessage | ToolMessage) -> tuple[str, list[ContentBlockParam]]:
    if isinstance(message, HumanMessage):
        return "user", [{"type": "text", "text": message.content}]
    if isinstance(message, ToolMessage):
        return "user", [
            {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
        ]
    blocks: list[ContentBlockParam] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += (
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    )
    return "assistant", blocks


def _tool_choice(choice: str) -> ToolChoiceParam:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def create(
    *,
    model: str = DEFAULT_MODEL,
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    json_schema: bool = True,
    **options: Unpack[ProviderOptions],
) -> AnthropicChatModel:
    """Build an :class:`AnthropicChatModel` (the registry's factory)."""
    return AnthropicChatModel(
        model=model, api_key=api_key, base_url=base_url, json_schema=json_schema, **options
    )
