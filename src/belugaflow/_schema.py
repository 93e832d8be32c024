"""JSON Schemas: derived from Python types, strict by default, checked with field-named errors.

A schema is what a client outside Python reads to know what a run takes, returns and accepts
as signals; it travels in a :class:`~belugaflow.GraphSpec` as plain JSON Schema, so any process
checks a value against it without the Python type. Objects are closed: a field the schema does
not name is an error (``"qty": 2`` must not silently mean quantity 1).
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from ._errors import InputError

__all__ = ["SchemaLike", "check", "json_schema", "parse", "problems"]

T = TypeVar("T")

SchemaLike = type | Mapping[str, Any] | Any
"""A Python type (dataclass, ``TypedDict``, pydantic model, ``str``, ``int | None``...) or a
JSON Schema given as a dict."""


def json_schema(
    schema: SchemaLike, *, mode: Literal["validation", "serialization"] = "validation"
) -> dict[str, Any]:
    """The strict JSON Schema of a type, or of a JSON Schema dict (returned closed, copied).

    Every object that lists ``properties`` and says nothing of others gets
    ``additionalProperties: false``.
    """
    if isinstance(schema, Mapping):
        data: dict[str, Any] = json.loads(json.dumps(schema))
        _close(data)
        return data
    copied: dict[str, Any] = json.loads(_type_schema(schema, mode))  # the caller may change it
    return copied


@functools.lru_cache(maxsize=256)
def _type_schema(tp: Any, mode: Literal["validation", "serialization"]) -> str:
    data = _adapter(tp).json_schema(mode=mode)
    _close(data)
    return json.dumps(data)


@functools.lru_cache(maxsize=256)
def _adapter(tp: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(tp)


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_json))


def problems(schema: Mapping[str, Any], value: Any) -> list[str]:
    """Every way ``value`` breaks ``schema``, one line per field, in field order; empty if
    it fits."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    found = []
    for error in validator.iter_errors(value):
        where = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - allowed):
                path = f"{where}.{name}" if where else name
                found.append((path, f"{path}: unknown field"))
        elif error.validator == "required":
            name = error.message.split("'")[1] if "'" in error.message else error.message
            path = f"{where}.{name}" if where else name
            found.append((path, f"{path}: missing (required)"))
        else:
            found.append((where, f"{where or 'the value'}: {error.message}"))
    return [line for _, line in sorted(found)]


def check(schema: Mapping[str, Any], value: Any, subject: str) -> None:
    """Raise :class:`~belugaflow.InputError` naming each field if ``value`` breaks
    ``schema``; ``subject`` says what was checked (``"input of graph 'orders'"``)."""
    found = problems(schema, value)
    if found:
        raise InputError(subject, found)


def parse(tp: type[T], value: Any, subject: str) -> T:
    """``value`` (decoded JSON) checked against ``tp``'s strict schema, then built as ``tp``.

    Raises:
        InputError: naming every unknown, missing or mistyped field.
    """
    from pydantic import ValidationError

    check(json_schema(tp), value, subject)
    try:
        result: T = _adapter(typing.cast(Any, tp)).validate_python(value)
        return result
    except ValidationError as error:  # what JSON Schema cannot say (a custom validator)
        raise InputError(
            subject,
            [f"{'.'.join(map(str, e['loc'])) or 'the value'}: {e['msg']}" for e in error.errors()],
        ) from None
