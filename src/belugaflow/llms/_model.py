"""``ChatModel``: the interface every provider implements, async first with sync wrappers."""

from __future__ import annotations

import abc
import copy
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import BaseModel

from belugaflow._runnable import RunnableBase

from ._messages import (
    AIMessage,
    AIMessageChunk,
    Message,
    MessagesInput,
    Tool,
    coerce_messages,
    coerce_tool,
)
from ._sync import iterate_sync, run_sync

if TYPE_CHECKING:
    from ._fallbacks import FallbackModel
    from ._structured import StructuredModel

__all__ = ["ChatModel", "ChatRequest", "ResponseFormat"]

S = TypeVar("S", bound=BaseModel)

_TOOL_CHOICES = ("auto", "required", "none")


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Asks for an answer that is a JSON object following ``schema``."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """Everything one call sends, whatever the provider."""

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    """``"auto"``, ``"required"``, ``"none"`` or the name of one tool; None: provider default."""
    response_format: ResponseFormat | None = None


class ChatModel(RunnableBase):
    """A chat model: messages in, an :class:`AIMessage` out. Build one with
    :func:`~belugaflow.llms.new_chat_model` or from configuration.

    The async methods are the real ones (``agenerate``, ``astream``, ``abatch``); ``generate``,
    ``stream`` and ``batch`` wrap them for sync code and run them on one private event loop
    shared by all models. A model is also a :class:`~belugaflow.Runnable`
    (``invoke`` = ``generate``), so it can be a chain step or a graph node.

    Models hold HTTP connections, one pool per event loop that used them: ``await
    model.aclose()`` (or ``async with model:``) when done on a loop, ``model.close()`` (or
    ``with model:``) after using the sync API.

    Args:
        provider: The provider's name, e.g. ``"openai"``.
        model: The model's name, e.g. ``"gpt-4o-mini"``.
    """

    def __init__(self, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self._tools: tuple[Tool, ...] = ()
        self._tool_choice: str | None = None

    def __repr__(self) -> str:
        tools = f", tools={[t.name for t in self._tools]}" if self._tools else ""
        return f"<{type(self).__name__} {self.provider}:{self.model}{tools}>"

    @property
    def label(self) -> str:
        """``provider:model``, for messages and logs."""
        return f"{self.provider}:{self.model}"

    @property
    def is_sync(self) -> bool:
        return False

    # -- what providers implement --------------------------------------------------------------

    @abc.abstractmethod
    async def _generate(self, request: ChatRequest) -> AIMessage:
        """Answer one request, with the model's retries and breaker."""

    async def _stream(self, request: ChatRequest) -> AsyncGenerator[AIMessageChunk, None]:
        """Stream the answer to one request. Default: the whole answer as one chunk."""
        answer = await self._generate(request)
        yield AIMessageChunk(
            answer.content,
            tool_calls=answer.tool_calls,
            usage=answer.usage,
            model=answer.model,
            provider=answer.provider,
            finish_reason=answer.finish_reason,
        )

    def _candidates(self) -> tuple[ChatModel, ...]:
        """The models that may answer, in order (more than one for fallbacks)."""
        return (self,)

    async def aclose(self) -> None:
        """Close the connections this model opened on the running event loop."""

    # -- calling -------------------------------------------------------------------------------

    def _request(self, messages: MessagesInput, method: str) -> ChatRequest:
        return ChatRequest(
            messages=coerce_messages(messages, f"{self.label}: {method}()"),
            tools=self._tools,
            tool_choice=self._tool_choice,
        )

    async def agenerate(self, messages: MessagesInput) -> AIMessage:
        """Send ``messages`` and return the answer.

        Args:
            messages: The conversation, or a string for one human message.

        Raises:
            ProviderError: The call failed after its retries; ``retryable`` says whether
                trying later could help.
            CircuitOpenError: The provider's circuit breaker is open; nothing was sent.
            TypeError: An item of ``messages`` is not a message.
        """
        return await self._generate(self._request(messages, "agenerate"))

    def generate(self, messages: MessagesInput) -> AIMessage:
        """Sync :meth:`agenerate`. Not for use inside a running event loop."""
        return run_sync(self.agenerate(messages), what=f"{self.label}: generate()")

    def astream(self, messages: MessagesInput) -> AsyncIterator[AIMessageChunk]:
        """Yield the answer as it is produced; add the chunks up for the whole answer.

        Failures before the first chunk are retried; a failure after it is raised as is
        (the chunks already given out cannot be taken back). A stream that stops before the
        model finished raises :class:`ProviderResponseError`.
        """
        return self._stream(self._request(messages, "astream"))

    def stream(self, messages: MessagesInput) -> Iterator[AIMessageChunk]:
        """Sync :meth:`astream`. Not for use inside a running event loop."""
        return iterate_sync(self.astream(messages), what=f"{self.label}: stream()")

    async def ainvoke(self, input: MessagesInput) -> AIMessage:
        """Same as :meth:`agenerate` (the Runnable protocol)."""
        return await self.agenerate(input)

    def invoke(self, input: MessagesInput) -> AIMessage:
        """Same as :meth:`generate` (the Runnable protocol)."""
        return self.generate(input)

    async def abatch(
        self, inputs: Sequence[MessagesInput], *, max_concurrency: int | None = None
    ) -> list[AIMessage | Exception]:
        """Answer many conversations, at most ``max_concurrency`` at once (None: no limit).

        Each slot holds the answer, or the exception that conversation raised: one failure
        never fails the batch.
        """
        return await super().abatch(inputs, max_concurrency=max_concurrency)

    def batch(
        self, inputs: Sequence[MessagesInput], *, max_concurrency: int | None = None
    ) -> list[AIMessage | Exception]:
        """Sync :meth:`abatch`. Not for use inside a running event loop."""
        return run_sync(
            self.abatch(inputs, max_concurrency=max_concurrency), what=f"{self.label}: batch()"
        )

    # -- derived models ------------------------------------------------------------------------

    def bind_tools(
        self, tools: Sequence[Tool | type[BaseModel]], *, tool_choice: str | None = None
    ) -> Self:
        """Return a copy of this model that offers ``tools`` on every call.

        Args:
            tools: :class:`Tool` s, or pydantic model classes (see :meth:`Tool.from_model`).
            tool_choice: ``"auto"`` (the model decides), ``"required"`` (it must call one),
                ``"none"``, or the name of the one tool it must call. Default: the provider's.

        Raises:
            ValueError: Two tools share a name, or ``tool_choice`` names no bound tool.
        """
        where = f"{self.label}: bind_tools()"
        bound = tuple(coerce_tool(tool, where) for tool in tools)
        names = [tool.name for tool in bound]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{where}: tool names must be unique, repeated: {repeated}")
        if tool_choice is not None and tool_choice not in (*_TOOL_CHOICES, *names):
            raise ValueError(
                f"{where}: tool_choice {tool_choice!r} is neither one of {_TOOL_CHOICES}"
                f" nor a bound tool ({names})"
            )
        clone = copy.copy(self)  # shares the connections, breaker and rate limiter
        clone._tools = bound
        clone._tool_choice = tool_choice
        return clone

    def with_structured_output(self, schema: type[S]) -> StructuredModel[S]:
        """Return a model whose answers are instances of the pydantic model ``schema``.

        The provider is asked for JSON following the schema (natively where it can); the
        answer is validated, and :class:`InvalidOutputError` raised when it does not fit.
        """
        from ._structured import StructuredModel

        return StructuredModel(self, schema)

    def with_fallbacks(self, fallbacks: Sequence[ChatModel]) -> FallbackModel:
        """Return a model that asks ``fallbacks`` in order when this one fails.

        Typical: ``openai.with_fallbacks([anthropic, rules])``. Any error moves on to the next
        model (after that model's own retries); when all fail,
        :class:`AllModelsFailedError` lists every error.
        """
        from ._fallbacks import FallbackModel

        return FallbackModel([self, *fallbacks])

    # -- resources -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections the sync API (``generate``, ``stream``, ``batch``) opened."""
        run_sync(self.aclose(), what=f"{self.label}: close()")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
