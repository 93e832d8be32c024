"""Observability of model calls: one frozen :class:`LLMCall` per call, handed to hooks.

The attribute names are OpenTelemetry's GenAI semantic conventions, so a hook can copy
:attr:`LLMCall.attributes` onto a span or into metric labels as they are. Prompts and answers
are left out unless a model was built with ``capture_content=True``; API keys never appear.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ._messages import AIMessage, Message

__all__ = ["LLMCall", "LLMHook", "Observer"]

_log = logging.getLogger("belugaflow.llms")

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMCall:
    """One finished call to a model (all its attempts), successful or not."""

    name: ClassVar[str] = "belugaflow.llm.call"
    """The stable event name."""

    provider: str
    """The provider, e.g. ``"openai"``."""
    model: str
    """The model that was asked for."""
    response_model: str | None
    """The model that answered, as the provider reported it."""
    streaming: bool
    """Whether the answer was streamed."""
    duration: float
    """Seconds from the first attempt's start to the answer or the final error (the value of
    the ``gen_ai.client.operation.duration`` metric)."""
    attempts: int
    """Attempts made (1 when the first one succeeded)."""
    input_tokens: int | None
    """Prompt tokens, when the provider reported them."""
    output_tokens: int | None
    """Answer tokens, when the provider reported them."""
    finish_reason: str | None
    """Why the model stopped, when it answered."""
    error: BaseException | None = field(default=None, compare=False)
    """The error, when the call failed."""
    input_messages: tuple[Message, ...] | None = None
    """The prompt; only with ``capture_content=True``."""
    output_message: AIMessage | None = None
    """The answer; only with ``capture_content=True``."""

    @property
    def outcome(self) -> str:
        """``"ok"`` or ``"error"``: a low-cardinality label for metrics."""
        return "ok" if self.error is None else "error"

    @property
    def attributes(self) -> dict[str, str | int | float | list[str]]:
        """The call as OpenTelemetry GenAI attributes (``gen_ai.*``, ``error.type``).

        Both ``gen_ai.system`` (conventions up to 1.36) and its successor
        ``gen_ai.provider.name`` are set, so either generation of dashboards works.
        """
        attrs: dict[str, str | int | float | list[str]] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": self.provider,
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": self.model,
        }
        if self.response_model:
            attrs["gen_ai.response.model"] = self.response_model
        if self.input_tokens is not None:
            attrs["gen_ai.usage.input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            attrs["gen_ai.usage.output_tokens"] = self.output_tokens
        if self.finish_reason is not None:
            attrs["gen_ai.response.finish_reasons"] = [self.finish_reason]
        if self.error is not None:
            attrs["error.type"] = type(self.error).__name__
        if self.input_messages is not None:
            attrs["gen_ai.input.messages"] = _messages_json(self.input_messages)
        if self.output_message is not None:
            attrs["gen_ai.output.messages"] = _messages_json((self.output_message,))
        return attrs


LLMHook = Callable[[LLMCall], None]
"""Receives every :class:`LLMCall` of the models it is given to. Must not block or raise."""


def _messages_json(messages: Sequence[Message]) -> str:
    entries = []
    for message in messages:
        parts: list[dict[str, object]] = []
        if message.content:
            parts.append({"type": "text", "content": message.content})
        if isinstance(message, AIMessage):
            parts += (
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                for c in message.tool_calls
            )
        entries.append({"role": _ROLES[message.role], "parts": parts})
    return json.dumps(entries, ensure_ascii=False, default=str)


class Observer:
    """Builds :class:`LLMCall` events for one model and hands them to its hooks."""

    __slots__ = ("capture_content", "hooks", "model", "provider")

    def __init__(
        self, provider: str, model: str, hooks: Sequence[LLMHook], capture_content: bool
    ) -> None:
        self.provider = provider
        self.model = model
        self.hooks = tuple(hooks)
        self.capture_content = capture_content

    def record(
        self,
        *,
        messages: Sequence[Message],
        started: float,
        attempts: int,
        streaming: bool,
        answer: AIMessage | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Emit one event for a call that started at ``started`` (``time.perf_counter()``)."""
        duration = time.perf_counter() - started
        usage = answer.usage if answer is not None else None
        if _log.isEnabledFor(logging.DEBUG):
            outcome = "ok" if error is None else f"failed ({type(error).__name__})"
            _log.debug(
                "llm call %s %r %s in %.3f s, %d attempt(s)",
                self.provider,
                self.model,
                outcome,
                duration,
                attempts,
            )
        if not self.hooks:
            return
        capture = self.capture_content
        event = LLMCall(
            provider=self.provider,
            model=self.model,
            response_model=answer.model if answer is not None else None,
            streaming=streaming,
            duration=duration,
            attempts=attempts,
            input_tokens=usage.input_tokens if usage is not None else None,
            output_tokens=usage.output_tokens if usage is not None else None,
            finish_reason=answer.finish_reason if answer is not None else None,
            error=error,
            input_messages=tuple(messages) if capture else None,
            output_message=answer if capture else None,
        )
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # an observer must never break the call it observes
                _log.exception("LLM hook %r failed", hook)
