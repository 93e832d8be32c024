"""Messages, tools and the JSON extraction used to read structured answers."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from belugaflow.llms import AIMessage, HumanMessage, SystemMessage, Tool, ToolMessage, Usage
from belugaflow.llms._messages import coerce_messages
from belugaflow.llms._structured import extract_json


def test_messages_take_their_content_positionally() -> None:
    """HumanMessage("hi") reads naturally; the rest of an AIMessage is keyword-only."""
    assert HumanMessage("hi").content == "hi" and HumanMessage.role == "human"
    assert SystemMessage("rules").role == "system"
    assert ToolMessage("42", tool_call_id="c1").tool_call_id == "c1"
    with pytest.raises(TypeError):
        AIMessage("hi", (), None)  # type: ignore[misc]


def test_a_string_is_one_human_message() -> None:
    """Strings and single messages are accepted where a conversation is expected."""
    assert coerce_messages("hi", "test") == (HumanMessage("hi"),)
    assert coerce_messages(SystemMessage("s"), "test") == (SystemMessage("s"),)
    with pytest.raises(TypeError, match="test: expected a list of messages"):
        coerce_messages(42, "test")  # type: ignore[arg-type]


def test_usage_adds_up() -> None:
    """Usage of several calls sums per kind."""
    assert Usage(1, 2) + Usage(3, 4) == Usage(4, 6) and Usage(4, 6).total_tokens == 10


class Refund(BaseModel):
    """Refund an order."""

    order_id: str
    amount: float


def test_a_tool_from_a_pydantic_model() -> None:
    """The class name, docstring and fields become the tool's name, description, schema."""
    tool = Tool.from_model(Refund)
    assert (tool.name, tool.description) == ("Refund", "Refund an order.")
    assert tool.parameters["required"] == ["order_id", "amount"]
    assert "title" not in tool.parameters
    assert Tool.from_model(Refund, name="refund_order").name == "refund_order"


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        (lambda: Tool("has space"), "tool name 'has space' is invalid"),
        (lambda: Tool("x" * 65), "1 to 64 letters"),
        (lambda: Tool("t", parameters={"type": "array"}), "type 'object', got type 'array'"),
    ],
)
def test_tools_are_checked(tool: object, message: str) -> None:
    """Names and schemas providers would reject are refused up front."""
    with pytest.raises(ValueError, match=message):
        tool()  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '  {"a": 1}\n',
        'Sure! ```json\n{"a": 1}\n``` Hope that helps.',
        '```\n{"a": 1}\n```',
        'The answer is {"a": 1}.',
    ],
)
def test_json_is_found_where_models_put_it(text: str) -> None:
    """Bare, fenced, or inside prose."""
    assert extract_json(text) == {"a": 1}


def test_no_json_is_an_error() -> None:
    """Text without JSON raises ValueError."""
    with pytest.raises(ValueError, match="no valid JSON"):
        extract_json("I approve.")
