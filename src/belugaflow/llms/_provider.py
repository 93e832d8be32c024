"""``ProviderModel``: what SDK-backed providers share — retries, breaker, rate limit, events.

A provider subclass only makes one attempt (:meth:`ProviderModel._send`,
:meth:`ProviderModel._send_stream`) and maps its SDK's errors to :mod:`._errors`; everything
around the attempt is here, and the retry loop itself is the engines' own
(:func:`belugaflow._execute.arun_step`), so a policy means the same for nodes and for models.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import enum
import json
import os
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Generic, TypedDict, TypeVar
from urllib.parse import urlsplit

from belugaflow._errors import CircuitOpenError, NodeFailedError
from belugaflow._execute import StepCall, arun_step
from belugaflow._runnable import CallKind
from belugaflow.config import Secret
from belugaflow.resilience import BreakerOptions, BreakerRegistry, CircuitBreaker, RetryPolicy

from ._errors import (
    InvalidOutputError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from ._messages import AIMessage, AIMessageChunk, ToolCall, Usage
from ._model import ChatModel, ChatRequest
from ._observe import LLMHook, Observer
from ._ratelimit import RateLimiter

__all__ = [
    "DEFAULT_RETRY",
    "UNSET",
    "LoopClients",
    "ProviderModel",
    "ProviderOptions",
    "Unset",
    "api_key_for",
    "breaker_name",
    "default_breakers",
    "network_error",
]

C = TypeVar("C")
T = TypeVar("T")


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"


UNSET = Unset.UNSET
"""Option not given: use the default (as opposed to None, which turns the feature off)."""

DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, max_interval=10, max_elapsed=60)
"""Retries of one model call: 3 attempts, 0.5 s then 1 s apart (or what Retry-After asks),
never past 60 s after the first attempt — a workflow should fall back rather than wait."""

default_breakers = BreakerRegistry()
"""Where models find their provider's circuit breaker unless given ``breakers=``: one breaker
per provider and endpoint, shared by every model of the process."""

_BREAKER_DEFAULTS: BreakerOptions = {
    "failure_threshold": 5,
    "recovery_timeout": 30.0,
    # A bad request is the caller's fault, not a sign that the provider is down.
    "excluded": (ProviderRequestError,),
}


class ProviderOptions(TypedDict, total=False):
    """Options every SDK-backed provider accepts (see :class:`ProviderModel`)."""

    retry: RetryPolicy
    breaker: CircuitBreaker | Unset | None
    breakers: BreakerRegistry
    rate_limiter: RateLimiter | None
    hooks: Sequence[LLMHook]
    capture_content: bool
    max_tokens: int | None
    temperature: float | None
    timeout: float | timedelta | None


class _Attempts:
    """One call in flight: its request and how many attempts it took."""

    __slots__ = ("count", "request", "reserved")

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.count = 0
        self.reserved = 0


class LoopClients(Generic[C]):
    """One SDK client per event loop that uses it: clients are bound to the loop that made them.

    Each client comes with a guard: an async generator parked on the loop, which the loop
    closes when it shuts down (``asyncio.run`` does that), and whose ``finally`` closes the
    client. So an owner used from many short-lived loops leaves no connection behind.

    Args:
        new: Makes a client.
        close: Closes one.
    """

    def __init__(self, new: Callable[[], C], close: Callable[[C], Awaitable[None]]) -> None:
        self._new = new
        self._close = close
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self._clients)

    async def get(self) -> C:
        """The running loop's client, made on first use."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        client = self._new()
        guard = self._guard(loop, client)
        self._clients[loop] = (client, guard)
        await anext(guard)  # now the loop knows it, and will close it at shutdown
        return client

    async def _guard(
        self, loop: asyncio.AbstractEventLoop, client: C
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._clients.pop(loop, None)
            await self._close(client)

    async def aclose(self) -> None:
        """Close the running loop's client, if it has one."""
        entry = self._clients.get(asyncio.get_running_loop())
        if entry is not None:
            await entry[1].aclose()


class ProviderModel(ChatModel, Generic[C]):
    """A model reached through a vendor SDK client of type ``C``.

    Every call goes: rate limiter → circuit breaker → one SDK attempt, retried by ``retry``.
    The SDK's own retries are off, so attempts never multiply. A breaker that is open fails
    the call at once with :class:`~belugaflow.CircuitOpenError` (not retried: a fallback
    should answer instead). One SDK client is made per event loop that uses the model.

    Args:
        provider: The provider's name.
        model: The model's name.
        base_url: The endpoint, when not the provider's default; names the breaker.
        retry: Retry policy of one call. Default :data:`DEFAULT_RETRY`;
            ``RetryPolicy.none()`` turns retries off.
        breaker: The circuit breaker. Default: the provider's breaker in ``breakers``
            (5 failures open it for 30 s; request errors like 400 do not count). None: no
            breaker.
        breakers: Where to find or create the default breaker. Default
            :data:`default_breakers`.
        rate_limiter: Requests/tokens per minute, shared by the models given the same
            limiter. Default none.
        hooks: Receive an :class:`LLMCall` per call.
        capture_content: Put prompts and answers into the events. Default false.
        max_tokens: Most tokens per answer. Default: the provider's.
        temperature: Sampling temperature. Default: the provider's.
        timeout: Seconds one attempt may take (float or timedelta). Default 60 s; None: no
            limit.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        base_url: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        breaker: CircuitBreaker | Unset | None = UNSET,
        breakers: BreakerRegistry | None = None,
        rate_limiter: RateLimiter | None = None,
        hooks: Sequence[LLMHook] = (),
        capture_content: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | timedelta | None = 60.0,
    ) -> None:
        super().__init__(provider=provider, model=model)
        where = f"{provider}:{model}"
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"{where}: retry must be a RetryPolicy, got {retry!r}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"{where}: max_tokens must be >= 1, got {max_tokens}")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if seconds is not None and not seconds > 0:
            raise ValueError(f"{where}: timeout must be > 0 seconds or None, got {timeout!r}")
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout = seconds
        self.rate_limiter = rate_limiter
        if breaker is UNSET:
            breaker = (breakers or default_breakers).get_or_create(
                breaker_name(provider, base_url), **_BREAKER_DEFAULTS
            )
        self.breaker = breaker
        # An open breaker must hand over to a fallback now, not sleep until it half-opens.
        self.retry = dataclasses.replace(
            retry, non_retryable=(*retry.non_retryable, CircuitOpenError)
        )
        self._observer = Observer(provider, model, hooks, capture_content)
        self._clients = LoopClients(self._new_client, self._close_client)

    # -- what a provider implements ------------------------------------------------------------

    @abc.abstractmethod
    def _new_client(self) -> C:
        """A new SDK client, with the SDK's own retries turned off."""

    @abc.abstractmethod
    async def _close_client(self, client: C) -> None:
        """Close an SDK client."""

    @abc.abstractmethod
    async def _send(self, client: C, request: ChatRequest) -> AIMessage:
        """Make one attempt; raise :class:`ProviderError` s, not SDK errors."""

    @abc.abstractmethod
    def _send_stream(self, client: C, request: ChatRequest) -> AsyncGenerator[AIMessageChunk, None]:
        """Stream one attempt; the last chunk carries ``finish_reason`` (None if the stream was
        cut), usage and tool calls. Raise :class:`ProviderError` s, not SDK errors."""

    def _fail(self, kind: type[ProviderError], message: str) -> ProviderError:
        """An error of ``kind`` about this model."""
        return kind(message, provider=self.provider, model=self.model)

    def _network_error(
        self, error: Exception, *, timeout: type[Exception], connection: type[Exception]
    ) -> ProviderError | None:
        """A timeout or connection failure, as both official SDKs report them; else ``None``."""
        return network_error(
            error,
            provider=self.provider,
            model=self.model,
            seconds=self.timeout,
            timeout=timeout,
            connection=connection,
        )

    def _chunk(
        self,
        text: str,
        *,
        model: str,
        tool_calls: tuple[ToolCall, ...] = (),
        usage: Usage | None = None,
        finish_reason: str | None = None,
    ) -> AIMessageChunk:
        """A stream chunk from this provider."""
        return AIMessageChunk(
            text,
            tool_calls=tool_calls,
            usage=usage,
            model=model,
            provider=self.provider,
            finish_reason=finish_reason,
        )

    def _tool_call(self, id: str, name: str, arguments: str) -> ToolCall:
        """A tool call whose arguments came as JSON text.

        Raises:
            InvalidOutputError: The arguments are not a JSON object.
        """
        try:
            decoded = json.loads(arguments or "{}")
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise InvalidOutputError(
                f"{self.label}: the arguments of the call to tool {name!r} are not a JSON object",
                output=arguments,
            )
        return ToolCall(id, name, decoded)

    # -- clients -------------------------------------------------------------------------------

    async def _client(self) -> C:
        """The running loop's SDK client, made on first use (see :class:`LoopClients`)."""
        return await self._clients.get()

    async def aclose(self) -> None:
        await self._clients.aclose()

    # -- one attempt ---------------------------------------------------------------------------

    async def _admit(self, attempt: _Attempts) -> None:
        attempt.count += 1
        limiter = self.rate_limiter
        if limiter is None:
            return
        attempt.reserved = (
            self._estimate_tokens(attempt.request) if limiter.tokens_per_minute else 0
        )
        await limiter.acquire(attempt.reserved)

    def _settle(self, attempt: _Attempts, answer: AIMessage | None) -> None:
        """Replace the token estimate by the real count (none used if the attempt failed)."""
        limiter = self.rate_limiter
        if limiter is None or not limiter.tokens_per_minute:
            return
        used = answer.usage.total_tokens if answer is not None and answer.usage else None
        limiter.adjust((used if used is not None else 0) - attempt.reserved)
        attempt.reserved = 0

    def _estimate_tokens(self, request: ChatRequest) -> int:
        # About four characters per token for English text; good enough to pace requests.
        chars = sum(len(message.content) for message in request.messages)
        chars += sum(
            len(tool.description) + len(json.dumps(tool.parameters)) for tool in request.tools
        )
        return chars // 4 + (self.max_tokens or 0)

    async def _attempt(self, attempt: _Attempts) -> AIMessage:
        await self._admit(attempt)
        answer = None
        try:
            answer = await self._send(await self._client(), attempt.request)
        finally:
            self._settle(attempt, answer)
        return answer

    async def _attempt_stream(
        self, attempt: _Attempts
    ) -> tuple[AIMessageChunk, AsyncGenerator[AIMessageChunk, None]]:
        """Open the stream and read its first chunk: failures up to here are retried."""
        await self._admit(attempt)
        stream = self._send_stream(await self._client(), attempt.request)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            self._settle(attempt, None)
            raise self._fail(ProviderResponseError, "the stream ended before any data") from None
        except BaseException:
            self._settle(attempt, None)
            await stream.aclose()
            raise
        return first, stream

    async def _retrying(self, fn: Callable[[_Attempts], Awaitable[T]], attempt: _Attempts) -> T:
        """Run ``fn`` under the retry policy and breaker; re-raise the last error itself."""
        # names_node=False: log records of the call keep naming the node that makes it.
        step = StepCall(
            f"llm {self.label}",
            self.label,
            fn,
            CallKind.ASYNC,
            self.retry,
            None,
            self.breaker,
            names_node=False,
        )
        try:
            result: T = await arun_step(step, attempt, None)
            return result
        except NodeFailedError as failed:
            error = failed.__cause__ or failed
        if isinstance(error, ProviderError):
            error.attempts = attempt.count
        raise error

    # -- calls ---------------------------------------------------------------------------------

    def _record(
        self,
        attempt: _Attempts,
        started: float,
        *,
        streaming: bool,
        answer: AIMessage | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._observer.record(
            messages=attempt.request.messages,
            started=started,
            attempts=attempt.count,
            streaming=streaming,
            answer=answer,
            error=error,
        )

    async def _generate(self, request: ChatRequest) -> AIMessage:
        attempt = _Attempts(request)
        started = time.perf_counter()
        try:
            answer = await self._retrying(self._attempt, attempt)
        except Exception as error:
            self._record(attempt, started, streaming=False, error=error)
            raise
        self._record(attempt, started, streaming=False, answer=answer)
        return answer

    async def _stream(self, request: ChatRequest) -> AsyncGenerator[AIMessageChunk, None]:
        attempt = _Attempts(request)
        started = time.perf_counter()
        try:
            total, rest = await self._retrying(self._attempt_stream, attempt)
        except Exception as error:
            self._record(attempt, started, streaming=True, error=error)
            raise
        answer = None
        try:
            yield total
            async for chunk in rest:
                total += chunk
                yield chunk
            if total.finish_reason is None:
                raise self._fail(
                    ProviderResponseError, "the stream ended before the model finished its answer"
                )
            answer = total.to_message()
        except Exception as error:
            self._record(attempt, started, streaming=True, error=error)
            raise
        finally:
            self._settle(attempt, answer)
            await rest.aclose()
        self._record(attempt, started, streaming=True, answer=answer)


def api_key_for(
    provider: str, api_key: str | Secret | None, *, base_url: str | None, env_var: str
) -> Secret:
    """The key to send: the one given, else ``env_var``'s. A server at ``base_url`` may need
    none (OpenAI-compatible servers ignore it), but the SDKs insist on some string.

    Raises:
        ValueError: No key anywhere, and no ``base_url``.
    """
    key = api_key.get_secret_value() if isinstance(api_key, Secret) else api_key
    if key is None and base_url is None:
        key = os.environ.get(env_var)
        if not key:
            raise ValueError(
                f"{provider}: no API key; pass api_key=, set llm.{provider}.api_key, or set the"
                f" {env_var} environment variable"
            )
    return Secret(key or "not-needed")


def network_error(
    error: Exception,
    *,
    provider: str,
    model: str,
    seconds: float | None,
    timeout: type[Exception],
    connection: type[Exception],
) -> ProviderError | None:
    """A timeout or connection failure, as both official SDKs report them (``timeout`` is a
    subclass of ``connection`` there, with the SDK's ``message``); else ``None``. ``seconds``
    is the call's time limit, for the message."""
    if isinstance(error, timeout):
        limit = f"no answer within {seconds:g} s" if seconds else str(error)
        return ProviderTimeoutError(limit, provider=provider, model=model)
    if isinstance(error, connection):
        cause = error.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return ProviderConnectionError(f"{error}{detail}", provider=provider, model=model)
    return None


def breaker_name(provider: str, base_url: str | None) -> str:
    """``llm.openai``, or ``llm.openai@host:port`` for another endpoint of the same API."""
    if not base_url:
        return f"llm.{provider}"
    return f"llm.{provider}@{urlsplit(base_url).netloc or base_url}"
