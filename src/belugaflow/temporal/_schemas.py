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

__all__ = ["check_start", "publish", "workflow_schema", "workflow_type"]

W = TypeVar("W", bound=type)

_DECLARED = "__belugaflow_schema__"


def publish(
    *, input: SchemaLike | None = None, signals: Mapping[str, SchemaLike] | None = None
) -> Callable[[W], W]:
    """Class decorator: the types a workflow's input and signals mean, where its methods take
    plain JSON (``Any``, ``Mapping[str, Any]``) to check it themselves. Put it under
    ``@workflow.defn``; :func:`workflow_schema` publishes these instead of the type hints."""

    def mark(cls: W) -> W:
        setattr(cls, _DECLARED, {"input": input, "signals": dict(signals or {})})
        return cls

    return mark


def workflow_schema(cls: type) -> dict[str, Any]:
    """The published schema of a ``@workflow.defn`` class: ``workflow_type``, ``kind``
    (``"workflow"``), and JSON Schemas of its ``input``, ``result``, ``signals``, ``updates``
    and ``queries``. An argument or result typed ``Any`` (or not at all) is ``{}``, anything;
    a signal or update that takes no argument has ``None``. Dynamic handlers are left out.

    Raises:
        ValueError: ``cls`` is not a workflow, or :func:`publish` names a signal it lacks.
    """
    definition = workflow._Definition.must_from_class(cls)
    declared = getattr(cls, _DECLARED, {"input": None, "signals": {}})
    signals = {name: s for name, s in definition.signals.items() if name is not None}
    unknown = sorted(set(declared["signals"]) - set(signals))
    if unknown:
        raise ValueError(
            f"@publish on {cls.__name__} names signals it does not define: {', '.join(unknown)}"
        )
    run = definition.run_fn
    return {
        "workflow_type": definition.name,
        "kind": "workflow",
        "input": _argument(run, declared["input"]),
        "result": _result(run),
        "signals": {
            name: _argument(signal.fn, declared["signals"].get(name))
            for name, signal in signals.items()
        },
        "updates": {
            name: {"input": _argument(update.fn), "result": _result(update.fn)}
            for name, update in definition.updates.items()
            if name is not None
        },
        "queries": {name: _result(query.fn) for name, query in definition.queries.items() if name},
    }


def workflow_type(cls: type) -> str:
    """The workflow type of a ``@workflow.defn`` class (its name, unless it is dynamic).

    Raises:
        ValueError: ``cls`` is not a workflow.
    """
    name = workflow._Definition.must_from_class(cls).name
    return name if name is not None else cls.__name__


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


def _argument(fn: Callable[..., Any], declared: SchemaLike | None = None) -> dict[str, Any] | None:
    """The schema of ``fn``'s one argument after ``self`` (``declared`` if given); None if it
    takes none."""
    if declared is not None:
        return json_schema(declared)
    parameters = list(inspect.signature(fn).parameters.values())[1:]
    if not parameters:
        return None
    return json_schema(typing.get_type_hints(fn).get(parameters[0].name, Any))


def _result(fn: Callable[..., Any]) -> dict[str, Any]:
    return json_schema(typing.get_type_hints(fn).get("return", Any), mode="serialization")
