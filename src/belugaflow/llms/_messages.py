"""Chat messages, tool calls, token usage and tool definitions: plain frozen values."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, TypeAlias

from pydantic import BaseModel

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "HumanMessage",
    "Message",
    "MessagesInput",
    "SystemMessage",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "Usage",
    "coerce_messages",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed, as the provider counted them."""

    input_tokens: int = 0
    """Tokens of the prompt (all messages, tools and schema)."""
    output_tokens: int = 0
    """Tokens of the answer."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool to be called with these arguments."""

    id: str
    """The provider's id of the call; answer it with a :class:`ToolMessage` of that id."""
    name: str
    """The tool's name."""
    arguments: dict[str, Any]
    """The arguments, decoded from the model's JSON."""


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """Instructions for the model: how to behave, what to answer."""

    content: str
    role: ClassVar[str] = "system"


@dataclass(frozen=True, slots=True)
class HumanMessage:
    """What the user (or the workflow) says or asks."""

    content: str
    role: ClassVar[str] = "human"


@dataclass(frozen=True, slots=True)
class AIMessage:
    """The model's answer: text, tool calls or both, with usage and provenance."""

    content: str = ""
    """The text of the answer (empty when the model only called tools)."""
    _: KW_ONLY
    tool_calls: tuple[ToolCall, ...] = ()
    """Tools the model asks to call, in order."""
    usage: Usage | None = None
    """Tokens used; None when the provider did not say."""
    model: str = ""
    """The model that answered, as the provider names it."""
    provider: str = ""
    """The provider that answered (``"openai"``, ``"anthropic"``, ``"rules"`` ...)."""
    finish_reason: str | None = None
    """Why the model stopped, in the provider's words (``"stop"``, ``"tool_calls"``,
    ``"end_turn"``, ``"length"`` ...)."""
    role: ClassVar[str] = "ai"


@dataclass(frozen=True, slots=True)
class ToolMessage:
    """The result of a tool call, sent back to the model."""

    content: str
    """The result, as text (JSON for structured results)."""
    _: KW_ONLY
    tool_call_id: str
    """The :attr:`ToolCall.id` this answers."""
    name: str | None = None
    """The tool's name (some providers want it)."""
    role: ClassVar[str] = "tool"


Message: TypeAlias = SystemMessage | HumanMessage | AIMessage | ToolMessage
"""Any chat message."""

MessagesInput: TypeAlias = str | Sequence[Message]
"""What the generate methods accept: messages, or a string as one human message."""

_MESSAGE_TYPES = (SystemMessage, HumanMessage, AIMessage, ToolMessage)


@dataclass(frozen=True, slots=True)
class AIMessageChunk:
    """A piece of a streamed answer. Add chunks up (``a + b``) to get the whole answer.

    Text arrives piece by piece; tool calls arrive whole, in the last chunks; usage and
    ``finish_reason`` come with the end of the stream.
    """

    content: str = ""
    _: KW_ONLY
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    model: str = ""
    provider: str = ""
    finish_reason: str | None = None

    def __add__(self, other: AIMessageChunk) -> AIMessageChunk:
        usage = self.usage
        if other.usage is not None:
            usage = other.usage if usage is None else usage + other.usage
        return AIMessageChunk(
            self.content + other.content,
            tool_calls=self.tool_calls + other.tool_calls,
            usage=usage,
            model=self.model or other.model,
            provider=self.provider or other.provider,
            finish_reason=other.finish_reason or self.finish_reason,
        )

    def to_message(self) -> AIMessage:
        """The whole answer, once every chunk has been added up."""
        return AIMessage(
            self.content,
            tool_calls=self.tool_calls,
            usage=self.usage,
            model=self.model,
            provider=self.provider,
            finish_reason=self.finish_reason,
        )


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _empty_object() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: a name, what it does, and a JSON schema of its arguments.

    Build one from a pydantic model with :meth:`from_model` (the model's docstring becomes the
    description), or spell the schema out.

    Raises:
        ValueError: The name is not 1 to 64 letters, digits, ``_`` or ``-`` (what providers
            accept), or the schema does not describe an object.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=_empty_object)
    """JSON schema of the arguments; an ``"object"`` schema."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TOOL_NAME.match(self.name):
            raise ValueError(
                f"tool name {self.name!r} is invalid: use 1 to 64 letters, digits, '_' or '-'"
            )
        if self.parameters.get("type") != "object":
            raise ValueError(
                f"tool {self.name!r}: parameters must be a JSON schema of type 'object',"
                f" got type {self.parameters.get('type')!r}"
            )

    @classmethod
    def from_model(cls, model: type[BaseModel], *, name: str | None = None) -> Tool:
        """A tool whose arguments are the fields of ``model``.

        Args:
            model: A pydantic model class; its docstring describes the tool.
            name: The tool's name. Default: the class name.
        """
        schema = model.model_json_schema()
        description = str(schema.pop("description", ""))
        schema.pop("title", None)
        return cls(name or model.__name__, description, schema)


def coerce_tool(tool: object, where: str) -> Tool:
    """A :class:`Tool` from a Tool or a pydantic model class."""
    if isinstance(tool, Tool):
        return tool
    if isinstance(tool, type) and issubclass(tool, BaseModel):
        return Tool.from_model(tool)
    raise TypeError(f"{where}: expected a Tool or a pydantic model class, got {tool!r}")


def coerce_messages(messages: MessagesInput, where: str) -> tuple[Message, ...]:
    """Check ``messages`` and return them as a tuple.

    Raises:
        TypeError: An item is not a message; the error names its index.
        ValueError: There are no messages.
    """
    if isinstance(messages, str):
        return (HumanMessage(messages),)
    if isinstance(messages, _MESSAGE_TYPES):
        return (messages,)
    if not isinstance(messages, Sequence):
        raise TypeError(
            f"{where}: expected a list of messages or a string, got {type(messages).__name__}"
        )
    result: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, _MESSAGE_TYPES):
            raise TypeError(
                f"{where}: message {index} is a {type(message).__name__}; expected"
                " SystemMessage, HumanMessage, AIMessage or ToolMessage"
            )
        result.append(message)
    if not result:
        raise ValueError(f"{where}: no messages to send")
    return tuple(result)
