"""The ``openai`` provider: OpenAI's chat completions through the official SDK.

Also any OpenAI-compatible server (llama.cpp, Ollama, vLLM, LM Studio...) through ``base_url``.
Such servers support structured output to different degrees, so a structured request starts as
a JSON-schema ``response_format``; a server that refuses that parameter gets a JSON-object one,
then the prompt alone (which always carries the schema), and the endpoint's answer is
remembered for the process.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Iterable
from typing import Any, Literal, Unpack, cast, get_args

from belugaflow.config import Secret

from ._errors import (
    ProviderError,
    ProviderRequestError,
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
from ._provider import ProviderModel, ProviderOptions, api_key_for, network_error
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

__all__ = ["DEFAULT_MODEL", "OpenAIChatModel", "StructuredOutput", "create", "sdk_error"]

DEFAULT_MODEL = "gpt-4o-mini"

StructuredOutput = Literal["auto", "json_schema", "json_object", "prompt"]
"""How a structured request asks for JSON: ``auto`` (the best the endpoint accepts), a JSON
schema, any JSON object, or the prompt alone."""

_FALLBACK: dict[str, Literal["json_object", "prompt"]] = {
    "json_schema": "json_object",
    "json_object": "prompt",
}
_LEARNED: dict[str, StructuredOutput] = {}
"""Endpoint -> the structured-output mode it accepted, learned by ``auto`` for the process."""

logger = logging.getLogger("belugaflow.llms")


class OpenAIChatModel(ProviderModel[openai.AsyncOpenAI]):
    """A chat model served by OpenAI, or by an OpenAI-compatible server at ``base_url``.

    Args:
        model: The model name. Default ``"gpt-4o-mini"``.
        api_key: The API key (a str or :class:`~belugaflow.config.Secret`). Default: the
            ``OPENAI_API_KEY`` environment variable; not needed with a ``base_url``.
        base_url: The server, e.g. ``"http://127.0.0.1:11434/v1"`` for Ollama.
        structured_output: How structured requests ask for JSON (:data:`StructuredOutput`).
            Default ``auto``: a JSON schema; if the endpoint refuses that parameter, a JSON
            object; if it refuses that too, the prompt alone (the schema is always in it).
            Each refusal costs one extra request, once per endpoint and process; it is neither
            retried as-is nor counted by the breaker. A fixed mode that is refused fails with
            :class:`~belugaflow.llms.ProviderRequestError`.
        json_schema: ``False`` is ``structured_output="prompt"`` (kept for older callers).
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
        structured_output: StructuredOutput = "auto",
        json_schema: bool = True,
        **options: Unpack[ProviderOptions],
    ) -> None:
        key = api_key_for("openai", api_key, base_url=base_url, env_var="OPENAI_API_KEY")
        if structured_output not in get_args(StructuredOutput):
            modes = ", ".join(get_args(StructuredOutput))
            raise ValueError(f"structured_output must be one of {modes}, got {structured_output!r}")
        super().__init__(provider="openai", model=model, base_url=base_url, **options)
        self._api_key = key
        self.structured_output: StructuredOutput = structured_output if json_schema else "prompt"

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

    @property
    def _endpoint(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    def _mode(self) -> StructuredOutput:
        """The structured-output mode of the next request."""
        if self.structured_output != "auto":
            return self.structured_output
        return _LEARNED.get(self._endpoint, "json_schema")

    def _params(self, request: ChatRequest, mode: StructuredOutput) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": _messages(request.messages)}
        if request.tools:
            params["tools"] = _tools(request)
            if request.tool_choice is not None:
                params["tool_choice"] = _tool_choice(request.tool_choice)
        if request.response_format is not None and mode == "json_schema":
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
        elif request.response_format is not None and mode == "json_object":
            response_format: dict[str, Any] = {"type": "json_object"}
            if self.base_url:
                # llama.cpp's servers constrain the object to a "schema" given beside it (their
                # convention); other compatible servers ignore the key. OpenAI gets none.
                response_format["schema"] = request.response_format.schema
            params["response_format"] = cast(ResponseFormat, response_format)
        if self.max_tokens is not None:
            # OpenAI's newer models want max_completion_tokens; compatible servers know max_tokens.
            key = "max_tokens" if self.base_url else "max_completion_tokens"
            params[key] = self.max_tokens
        if self.temperature is not None:
            params["temperature"] = self.temperature
        return params

    async def _create(self, client: openai.AsyncOpenAI, request: ChatRequest, **extra: Any) -> Any:
        """One request; a structured one the endpoint refuses for its ``response_format`` is
        sent again at once in the next mode down (``auto``), never retried as it was."""
        while True:
            mode = self._mode()
            try:
                return await client.chat.completions.create(**self._params(request, mode), **extra)
            except Exception as error:
                if request.response_format is None or mode == "prompt" or not _refused(error):
                    raise self._error(error) from error
                if self.structured_output != "auto":
                    raise self._fail(
                        ProviderRequestError,
                        f"the server refused response_format {mode!r}"
                        f" ({_message(error)}); set structured_output to 'auto' or a mode it"
                        " supports (llm.openai.structured_output)",
                    ) from error
                _LEARNED[self._endpoint] = _FALLBACK[mode]
                logger.warning(
                    "%s refused response_format %r (%s); structured requests to it use %r"
                    " from now on",
                    self._endpoint,
                    mode,
                    _message(error).splitlines()[0][:200],  # servers send their traceback too
                    _FALLBACK[mode],
                )

    async def _send(self, client: openai.AsyncOpenAI, request: ChatRequest) -> AIMessage:
        completion: ChatCompletion = await self._create(client, request)
        try:
            return self._answer(completion)
        except (AttributeError, TypeError, IndexError) as error:  # valid JSON, wrong shape
            raise self._fail(ProviderResponseError, f"unexpected answer: {error}") from error

    async def _send_stream(
        self, client: openai.AsyncOpenAI, request: ChatRequest
    ) -> AsyncGenerator[AIMessageChunk, None]:
        chunks = await self._create(
            client, request, stream=True, stream_options={"include_usage": True}
        )
        calls: dict[int, dict[str, str]] = {}
        answered = False
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
                        answered = True
                        yield self._chunk(text, model=model)
                    for choice in chunk.choices:
                        finish_reason = choice.finish_reason or finish_reason
        except Exception as error:
            raise self._error(error) from error
        if not answered and not calls:
            raise self._empty(finish_reason, usage)
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
        tokens = Usage(usage.prompt_tokens, usage.completion_tokens) if usage else None
        if not message.content and not calls:
            raise self._empty(choice.finish_reason, tokens)
        return AIMessage(
            message.content or "",
            tool_calls=calls,
            usage=tokens,
            model=completion.model or self.model,
            provider=self.provider,
            finish_reason=choice.finish_reason,
        )

    def _empty(self, finish_reason: str | None, usage: Usage | None) -> ProviderError:
        """An answer with no text and no tool call: an error, never content."""
        tokens = f", {usage.output_tokens} completion tokens" if usage is not None else ""
        return self._fail(
            ProviderResponseError,
            f"the model answered nothing (finish_reason {finish_reason!r}{tokens}); a base"
            " model's chat template, or max_tokens too small, can do this",
        )

    def _error(self, error: Exception) -> ProviderError:
        """Map an SDK (or decoding) error to ours, keeping the provider's message."""
        return sdk_error(error, provider=self.provider, model=self.model, timeout=self.timeout)


def sdk_error(
    error: Exception, *, provider: str, model: str, timeout: float | None
) -> ProviderError:
    """Our error for an openai SDK (or decoding) error, keeping the provider's message; chat
    models and :class:`~belugaflow.memory.OpenAIEmbedder` share it. ``timeout`` is the call's
    time limit in seconds, for the message."""
    network = network_error(
        error,
        provider=provider,
        model=model,
        seconds=timeout,
        timeout=openai.APITimeoutError,
        connection=openai.APIConnectionError,
    )
    if network is not None:
        return network
    if isinstance(error, openai.APIStatusError):
        return error_for_status(
            error.status_code,
            error.message,
            provider=provider,
            model=model,
            headers=error.response.headers,
        )
    if isinstance(error, openai.APIResponseValidationError | ValueError):
        return ProviderResponseError(f"unreadable answer: {error}", provider=provider, model=model)
    if isinstance(error, openai.APIError):  # an error event inside a stream
        return ProviderUnavailableError(error.message, provider=provider, model=model)
    transport = transport_error(error, provider=provider, model=model)
    return transport or ProviderError(
        f"{type(error).__name__}: {error}", provider=provider, model=model
    )


def _refused(error: Exception) -> bool:
    """The server refused the request for its ``response_format`` (llama.cpp answers 500,
    others 400 or 422, each naming the parameter or the types it accepts)."""
    if not isinstance(error, openai.APIStatusError) or error.status_code not in (400, 422, 500):
        return False
    text = _message(error).lower()
    return any(name in text for name in ("response_format", "json_schema", "json_object"))


def _message(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    body = getattr(error, "body", None)
    return f"{message} {json.dumps(body)}" if body and str(body) not in message else message


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
    structured_output: StructuredOutput = "auto",
    json_schema: bool = True,
    **options: Unpack[ProviderOptions],
) -> OpenAIChatModel:
    """Build an :class:`OpenAIChatModel` (the registry's factory)."""
    return OpenAIChatModel(
        model=model,
        api_key=api_key,
        base_url=base_url,
        structured_output=structured_output,
        json_schema=json_schema,
        **options,
    )
