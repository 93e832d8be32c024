"""``workflow_schema``: a hand-written workflow's published schema, from its type hints or from
what ``@publish`` declares where a method takes plain JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio import workflow
from temporalio.common import RawValue

from belugaflow.temporal import publish, workflow_schema


@dataclass
class Ticket:
    ticket_id: str
    priority: int = 0


@dataclass
class Answer:
    text: str


@workflow.defn(name="support")
class Support:
    @workflow.run
    async def run(self, ticket: Ticket) -> Answer:
        return Answer("")

    @workflow.signal
    def escalate(self) -> None: ...

    @workflow.signal(name="add-note")
    def add_note(self, note: str) -> None: ...

    @workflow.signal(dynamic=True)
    def anything(self, name: str, args: Sequence[RawValue]) -> None: ...

    @workflow.update
    def reprioritize(self, priority: int) -> Ticket:
        return Ticket("", priority)

    @workflow.update
    def close(self) -> None: ...

    @workflow.query
    def status(self) -> str:
        return ""

    @workflow.query
    def raw(self):  # type: ignore[no-untyped-def]  # no hint: anything
        return None


@workflow.defn
@publish(input=Ticket, signals={"note": str})
class Checked:
    """Takes plain JSON and checks it itself; ``@publish`` says what it means."""

    @workflow.run
    async def run(self, *input: Any) -> None: ...

    @workflow.signal
    def note(self, *text: Any) -> None: ...

    @workflow.signal
    def poke(self, value: Any) -> None: ...


@workflow.defn
@publish(signals={"nots": str})
class Misspelled:
    @workflow.run
    async def run(self) -> None: ...

    @workflow.signal
    def note(self, *text: Any) -> None: ...


def test_the_schema_comes_from_the_type_hints() -> None:
    schema = workflow_schema(Support)
    assert schema["workflow_type"] == "support" and schema["kind"] == "workflow"
    assert schema["input"]["required"] == ["ticket_id"]
    assert schema["input"]["additionalProperties"] is False  # closed: a typo is an error
    assert schema["result"]["properties"] == {"text": {"title": "Text", "type": "string"}}
    assert schema["signals"] == {"escalate": None, "add-note": {"type": "string"}}  # no dynamic
    assert schema["updates"]["reprioritize"]["input"] == {"type": "integer"}
    assert set(schema["updates"]["reprioritize"]["result"]["properties"]) == {
        "ticket_id",
        "priority",
    }
    assert schema["updates"]["close"] == {"input": None, "result": {"type": "null"}}
    assert schema["queries"] == {"status": {"type": "string"}, "raw": {}}


def test_publish_declares_what_plain_json_means() -> None:
    schema = workflow_schema(Checked)
    assert schema["workflow_type"] == "Checked"
    assert schema["input"] == workflow_schema(Support)["input"]
    assert schema["result"] == {"type": "null"}
    assert schema["signals"] == {"note": {"type": "string"}, "poke": {}}  # Any: anything


def test_publish_naming_a_signal_the_workflow_lacks_is_an_error() -> None:
    with pytest.raises(ValueError, match="names signals it does not define: nots"):
        workflow_schema(Misspelled)


def test_a_class_that_is_not_a_workflow_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"@workflow\.defn"):
        workflow_schema(Ticket)
