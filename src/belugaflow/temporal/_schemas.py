"""Published schemas of hand-written workflows: what a client sends and gets back, as JSON
Schema, in the shape graphs publish (:meth:`~belugaflow.GraphSpec.schema`).

The schemas come from the workflow class's type hints. A workflow that takes its input as plain
JSON (so that a malformed one fails the run instead of the SDK's decoding) says what the JSON
means with :func:`publish`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from temporalio import workflow

from .._schema import SchemaLike, check, json_schema

__all__ = ["check_start", "publish", "workflow_schema"]

W = TypeVar("W", bound=type)

_DECLARED = "__belugaflow_schema__"


def publish(
    *, input: SchemaLike | None = None, signals: Mapping[str, SchemaLike] | None = None
) -> Callable[[W], W]:
    """Class decorator: the types a workflow's input and signals mean, where its methods take
    plain JSON (``Mapping[str, Any]``, ``Any``) to check it themselves."""

    def mark(cls: W) -> W:
        setattr(cls, _DECLARED, {"input": input, "signals": dict(signals or {})})
        return cls

    return mark


def workflow_schema(cls: type) -> dict[str, Any]:
    """The published schema of a ``@workflow.defn`` class: ``workflow_type``, ``kind``
    (``"workflow"``), and JSON Schemas of its ``input``, ``result``, ``signals``, ``updates``
    and ``queries``."""
    definition = workflow._Definition.must_from_class(cls)
    declared = getattr(cls, _DECLARED, {"input": None, "signals": {}})
    run = definition.run_fn
    return {
        "workflow_type": definition.name,
        "kind": "workflow",
        "input": _schema(declared["input"]) if declared["input"] else _argument(run),
        "result": _result(run),
        "signals": {
            name: _schema(declared["signals"][name])
            if name in declared["signals"]
            else _argument(signal.fn)
            for name, signal in definition.signals.items()
            if name is not None
        },
        "updates": {
            name: {"input": _argument(update.fn), "result": _result(update.fn)}
            for name, update in definition.updates.items()
            if name is not None
        },
        "queries": {name: _result(query.fn) for name, query in definition.queries.items() if name},
    }


def check_start(workflows: Sequence[type], workflow_run: Any, json_arg: Any) -> None:
    """Refuse, before it is sent, the input of a registered workflow that breaks its published
    input schema; ``json_arg`` is the input as it will travel, decoded.

    Raises:
        InputError: naming each field.
    """
    for cls in workflows:
        definition = workflow._Definition.must_from_class(cls)
        if workflow_run in (definition.run_fn, definition.name, cls):
            schema = workflow_schema(cls)["input"]
            if schema is not None:
                check(schema, json_arg, f"input of {definition.name}")
            return


def _schema(tp: Any) -> dict[str, Any] | None:
    return None if tp is None else json_schema(tp)


def _argument(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """The schema of ``fn``'s one argument after ``self``; None if it takes none."""
    parameters = list(inspect.signature(fn).parameters.values())[1:]
    if not parameters:
        return None
    hint = typing.get_type_hints(fn).get(parameters[0].name, Any)
    return None if hint is Any else _schema(hint)


def _result(fn: Callable[..., Any]) -> dict[str, Any]:
    hint = typing.get_type_hints(fn).get("return", Any)
    if hint is Any or hint is None or hint is type(None):
        return {} if hint is Any else {"type": "null"}
    return json_schema(hint, mode="serialization")
