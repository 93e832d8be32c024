"""Structured answers: ask for JSON that follows a schema, then validate what comes back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ._errors import InvalidOutputError
from ._messages import MessagesInput, SystemMessage
from ._model import ChatModel, ChatRequest, ResponseFormat
from ._sync import run_sync

__all__ = ["StructuredModel", "extract_json", "validation_summary"]

S = TypeVar("S", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> Any:
    """Decode the JSON in a model's answer: the whole text, a fenced block, or from the first
    ``{`` to the last ``}`` (models like to wrap JSON in prose or Markdown).

    Raises:
        ValueError: No JSON could be decoded.
    """
    for candidate in _candidates(text):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("the answer holds no valid JSON")


def _candidates(text: str) -> Iterator[str]:
    # Lazily: a plain JSON answer (the usual case) needs no regex search.
    yield text
    yield from (match.group(1).strip() for match in _FENCE.finditer(text))
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        yield text[start : end + 1]


def validation_summary(error: ValidationError) -> str:
    """``field: problem; ...`` — short enough for an error message or a repair prompt."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'answer'}: {e['msg']}"
        for e in error.errors()
    )


class StructuredModel(Generic[S]):
    """A model whose answers are validated instances of a pydantic model.

    Made by :meth:`ChatModel.with_structured_output`.
    """

    def __init__(self, model: ChatModel, schema: type[S]) -> None:
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise TypeError(
                f"{model.label}: with_structured_output() needs a pydantic model class,"
                f" got {schema!r}"
            )
        self.model = model
        self.schema = schema
        json_schema = schema.model_json_schema()
        self._format = ResponseFormat(schema.__name__, json_schema)
        # Also in the prompt: OpenAI-compatible servers may ignore the native parameter.
        self._instruction = SystemMessage(
            "Answer with only a JSON object that follows this JSON schema:\n"
            + json.dumps(json_schema, ensure_ascii=False)
        )

    def __repr__(self) -> str:
        return f"<StructuredModel {self.model.label} -> {self.schema.__name__}>"

    async def agenerate(self, messages: MessagesInput) -> S:
        """Send ``messages`` and return the answer as a ``schema`` instance.

        Raises:
            InvalidOutputError: The answer is not JSON, or does not fit the schema; its
                ``output`` holds the raw answer.
            ProviderError: The call itself failed (see :meth:`ChatModel.agenerate`).
        """
        base = self.model._request(messages, "agenerate")
        request = ChatRequest(
            messages=(self._instruction, *base.messages),
            tools=base.tools,
            tool_choice=base.tool_choice,
            response_format=self._format,
        )
        answer = await self.model._generate(request)
        return self.parse(answer.content)

    def generate(self, messages: MessagesInput) -> S:
        """Sync :meth:`agenerate`. Not for use inside a running event loop."""
        return run_sync(self.agenerate(messages), what=f"{self!r}: generate()")

    def parse(self, text: str) -> S:
        """Validate a raw answer against the schema.

        Raises:
            InvalidOutputError: ``text`` is not JSON or does not fit the schema.
        """
        name = self.schema.__name__
        try:
            data = extract_json(text)
        except ValueError:
            raise InvalidOutputError(
                f"{self.model.label}: the answer is not JSON (expected a {name} object)",
                output=text,
            ) from None
        try:
            return self.schema.model_validate(data)
        except ValidationError as error:
            raise InvalidOutputError(
                f"{self.model.label}: the answer does not fit {name}: {validation_summary(error)}",
                output=text,
            ) from None
