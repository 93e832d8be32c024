"""The ``rules`` provider: a deterministic decision table. No LLM, no network, no surprises.

It is the fallback that decides when providers fail or their breaker is open, and the offline
decider of demos and tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import ProviderRequestError
from ._messages import AIMessage, HumanMessage, Usage
from ._model import ChatModel, ChatRequest
from ._observe import LLMHook, Observer
from ._structured import extract_json

__all__ = ["Rule", "RuleMatch", "RulesModel", "create"]

_MISSING = object()

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda value, expected: bool(value == expected),
    "ne": lambda value, expected: bool(value != expected),
    "gt": lambda value, expected: bool(value > expected),
    "gte": lambda value, expected: bool(value >= expected),
    "lt": lambda value, expected: bool(value < expected),
    "lte": lambda value, expected: bool(value <= expected),
    "in": lambda value, expected: value in expected,
    "not_in": lambda value, expected: value not in expected,
}
_OPERATORS = (*_COMPARE, "exists")
_SHOWN = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "not_in": "not in",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a decision table: when every condition holds, make ``choice``.

    ``when`` maps input fields to conditions: a plain value means "equals"; a mapping gives
    operators, all of which must hold — ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``,
    ``in`` / ``not_in`` (a list) and ``exists`` (true / false). ``"customer.tier"`` reaches
    into nested mappings. A missing field, or one that cannot be compared (``"abc" > 5``),
    fails every condition except ``exists: false``. An empty ``when`` always matches.

    Example: ``Rule("review", when={"amount": {"gt": 1000}, "country": {"in": ["US", "CA"]}})``.
    """

    choice: str
    when: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """What a decision table decided, and why."""

    choice: str
    reason: str
    rule: str | None
    """The rule that matched; None when the default decided."""


class _Condition:
    __slots__ = ("expected", "field", "op")

    def __init__(self, field: str, op: str, expected: Any) -> None:
        self.field, self.op, self.expected = field, op, expected

    def holds(self, context: Mapping[str, Any]) -> bool:
        value = _lookup(context, self.field)
        if self.op == "exists":
            return (value is not _MISSING) is self.expected
        if value is _MISSING:
            return False
        try:
            return _COMPARE[self.op](value, self.expected)
        except TypeError:  # e.g. "abc" > 5: the condition simply does not hold
            return False

    def __str__(self) -> str:
        if self.op == "exists":
            return f"{self.field} {'is set' if self.expected else 'is not set'}"
        return f"{self.field} {_SHOWN.get(self.op, self.op)} {self.expected!r}"


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    if path in context:
        return context[path]
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compile(rule: Rule, where: str) -> list[_Condition]:
    if not isinstance(rule.choice, str) or not rule.choice:
        raise ValueError(f"{where}: choice must be a non-empty string, got {rule.choice!r}")
    if not isinstance(rule.when, Mapping):
        raise ValueError(f"{where}: 'when' must be a mapping of field to condition")
    conditions = []
    for field_name, condition in rule.when.items():
        spec = condition if isinstance(condition, Mapping) else {"eq": condition}
        if not spec:
            raise ValueError(f"{where}: field {field_name!r} has an empty condition")
        for op, expected in spec.items():
            if op not in _OPERATORS:
                raise ValueError(
                    f"{where}: field {field_name!r}: unknown operator {op!r}"
                    f" (use {', '.join(_OPERATORS)})"
                )
            if op in ("in", "not_in") and not isinstance(expected, list | tuple | set | frozenset):
                raise ValueError(f"{where}: field {field_name!r}: {op} needs a list")
            if op == "exists" and not isinstance(expected, bool):
                raise ValueError(f"{where}: field {field_name!r}: exists needs true or false")
            conditions.append(_Condition(str(field_name), op, expected))
    return conditions


class RulesModel(ChatModel):
    """A decision table usable wherever a model is: first matching rule wins, else ``default``.

    :func:`~belugaflow.llms.decide` asks it directly with the context; as a chat model it
    reads the input fields from the JSON object in the last human message and answers with
    ``{"choice": ..., "reason": ..., "confidence": 1.0}``.

    Args:
        table: The rules, as :class:`Rule` s or mappings with ``choice``, ``when``, ``name``.
        default: The choice when no rule matches. Default none: no match is an error.
        name: Reported as the model's name. Default ``"rules"``.
        hooks: Receive an :class:`LLMCall` per call, as for other providers.
        capture_content: Put the inputs and answers into the events. Default false.

    Raises:
        ValueError: A rule is malformed; the message names the rule and the field.
    """

    def __init__(
        self,
        table: Sequence[Rule | Mapping[str, Any]],
        *,
        default: str | None = None,
        name: str = "rules",
        hooks: Sequence[LLMHook] = (),
        capture_content: bool = False,
    ) -> None:
        super().__init__(provider="rules", model=name)
        if default is not None and (not isinstance(default, str) or not default):
            raise ValueError(f"rules: default must be a non-empty string, got {default!r}")
        rules: list[tuple[Rule, list[_Condition]]] = []
        for index, row in enumerate(table):
            label = f"rules: rule {index}"
            if isinstance(row, Mapping):
                unknown = sorted(set(row) - {"choice", "when", "name"})
                if unknown or "choice" not in row:
                    raise ValueError(
                        f"{label}: expected keys choice, when, name; got {sorted(row)}"
                    )
                row = Rule(row["choice"], row.get("when") or {}, row.get("name"))
            if not isinstance(row, Rule):
                raise ValueError(f"{label}: expected a Rule or a mapping, got {row!r}")
            if row.name:
                label = f"{label} ({row.name!r})"
            rules.append((row, _compile(row, label)))
        self.table = tuple(rule for rule, _ in rules)
        self.default = default
        self._rules = rules
        self._observer = Observer("rules", name, hooks, capture_content)

    def __repr__(self) -> str:
        return f"<RulesModel {self.model!r}: {len(self.table)} rules, default={self.default!r}>"

    @property
    def choices(self) -> frozenset[str]:
        """Every choice this table can make."""
        made = {rule.choice for rule in self.table}
        return frozenset(made | ({self.default} if self.default else set()))

    def evaluate(self, context: Mapping[str, Any]) -> RuleMatch | None:
        """The first rule that matches ``context``, else the default; None if neither."""
        for index, (rule, conditions) in enumerate(self._rules):
            if all(condition.holds(context) for condition in conditions):
                name = rule.name or f"rule {index}"
                why = " and ".join(map(str, conditions)) or "no conditions"
                return RuleMatch(rule.choice, f"{name} matched: {why}", name)
        if self.default is not None:
            return RuleMatch(self.default, "no rule matched; default choice", None)
        return None

    async def _generate(self, request: ChatRequest) -> AIMessage:
        started = time.perf_counter()
        try:
            answer = self._answer(request)
        except Exception as error:
            self._observer.record(
                messages=request.messages, started=started, attempts=1, streaming=False, error=error
            )
            raise
        self._observer.record(
            messages=request.messages, started=started, attempts=1, streaming=False, answer=answer
        )
        return answer

    def _answer(self, request: ChatRequest) -> AIMessage:
        context = _context_of(request)
        if context is None:
            raise ProviderRequestError(
                "the rules provider needs the input fields as a JSON object in the last human"
                " message",
                provider=self.provider,
                model=self.model,
            )
        match = self.evaluate(context)
        if match is None:
            raise ProviderRequestError(
                "no rule matched and the table has no default",
                provider=self.provider,
                model=self.model,
            )
        content = json.dumps({"choice": match.choice, "reason": match.reason, "confidence": 1.0})
        return AIMessage(
            content,
            usage=Usage(0, 0),
            model=self.model,
            provider=self.provider,
            finish_reason="stop",
        )


def _context_of(request: ChatRequest) -> Mapping[str, Any] | None:
    human = [message for message in request.messages if isinstance(message, HumanMessage)]
    if not human:
        return None
    try:
        context = extract_json(human[-1].content)
    except ValueError:
        return None
    return context if isinstance(context, Mapping) else None


def create(
    *,
    table: Sequence[Rule | Mapping[str, Any]] = (),
    default: str | None = None,
    name: str = "rules",
    hooks: Sequence[LLMHook] = (),
    capture_content: bool = False,
) -> RulesModel:
    """Build a :class:`RulesModel` (the registry's factory).

    Raises:
        ValueError: The table is empty and has no default, or a rule is malformed.
    """
    if not table and default is None:
        raise ValueError("rules: give a table of rules, a default choice, or both")
    return RulesModel(
        table, default=default, name=name, hooks=hooks, capture_content=capture_content
    )
