"""``decide``: let a model pick one of a few allowed choices — validated, repaired once, and
with a deterministic fallback, so a decision never hangs a workflow or comes back invalid."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ._errors import DecisionError
from ._messages import AIMessage, HumanMessage, Message, SystemMessage
from ._model import ChatModel, ChatRequest, ResponseFormat
from ._rules import RulesModel
from ._structured import extract_json
from ._sync import run_sync

__all__ = ["Decision", "adecide", "decide"]

_SYSTEM = (
    "You make one decision inside an automated workflow. Pick exactly one of the allowed"
    " choices. Reply with only a JSON object, no other text:"
    ' {"choice": "<one of the allowed choices>", "reason": "<one short sentence>",'
    ' "confidence": <a number from 0 to 1>}'
)

DEFAULT_INSTRUCTIONS = "Make the decision the context calls for."

FALLBACK_PROVIDER = "fallback"
"""``Decision.provider`` when the fixed fallback choice decided."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A validated choice, and who made it."""

    choice: str
    """One of the allowed choices, always."""
    reason: str = ""
    """Why, in the decider's words (for a rule: which rule matched)."""
    confidence: float | None = None
    """The decider's confidence, 0 to 1; None when it gave none (a fixed fallback)."""
    provider: str
    """Who decided: ``"openai"``, ``"rules"`` ... or ``"fallback"`` for the fixed choice."""
    model: str
    """The model (or rules table) that decided; empty for the fixed choice."""
    fallback_used: bool = False
    """True when the first model did not decide (it failed, its breaker was open, or its
    answer stayed invalid after the repair)."""
    repaired: bool = False
    """True when the decider's first answer was invalid and the repair prompt fixed it."""
    problems: tuple[str, ...] = ()
    """Why each earlier decider was passed over, in order."""

    def to_dict(self) -> dict[str, Any]:
        """The decision as plain JSON-ready data (for workflow state and payloads)."""
        data = asdict(self)
        data["problems"] = list(self.problems)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from :meth:`to_dict` output."""
        return cls(**{**data, "problems": tuple(data.get("problems", ()))})


async def adecide(
    model: ChatModel,
    context: Mapping[str, Any] | str,
    choices: Sequence[str],
    *,
    instructions: str = DEFAULT_INSTRUCTIONS,
    fallback: ChatModel | str | None = None,
    recalled: str = "",
) -> Decision:
    """Ask ``model`` to pick one of ``choices`` for ``context``; never return an invalid choice.

    The prompt asks for JSON ``{"choice", "reason", "confidence"}`` (natively as a JSON schema
    where the provider supports it). The answer is validated: the choice must be one of
    ``choices`` exactly, the confidence a number from 0 to 1. An invalid answer gets exactly one
    repair prompt that says what was wrong; a repaired answer whose choice is valid but whose
    confidence is still not from 0 to 1 keeps its choice, with ``confidence=None``. Then, in
    order: the models of ``model.with_fallbacks(...)``, ``fallback`` if it is a model,
    ``fallback`` if it is a fixed choice. A :class:`~belugaflow.llms.RulesModel` is asked
    directly with ``context``.

    Args:
        model: Decides first (a model, a ``with_fallbacks`` chain, or a rules table).
        context: What the decision is about: a mapping (sent as JSON; what rules read) or
            text.
        choices: The allowed choices, distinct non-empty strings.
        instructions: What to decide, in words, e.g. ``"Approve, review or reject this
            order."``
        fallback: A last resort: a model (typically rules) or one of ``choices``.
        recalled: What memory recalls for this decision (earlier, similar cases and how they
            ended: :meth:`belugaflow.memory.Recalled.text`), shown to models under its own
            heading. A rules table reads only ``context``: put what a rule should weigh there.

    Returns:
        The decision, with who made it and whether a fallback was used.

    Raises:
        DecisionError: No decider gave a valid choice and ``fallback`` is None; it lists why.
        ValueError: ``choices`` is empty or repeats itself, ``fallback`` is a string that is
            not a choice, or ``context`` is not JSON-serializable.
        TypeError: ``model`` is not a :class:`ChatModel`, or ``fallback`` is neither a model
            nor a string.
    """
    if not isinstance(model, ChatModel):
        raise TypeError(f"decide(): model must be a ChatModel, got {model!r}")
    if fallback is not None and not isinstance(fallback, ChatModel | str):
        raise TypeError(
            f"decide(): fallback must be a ChatModel, a choice or None, got {fallback!r}"
        )
    allowed = _check_choices(choices)
    if isinstance(fallback, str) and fallback not in allowed:
        raise ValueError(f"decide(): fallback choice {fallback!r} is not one of {list(allowed)}")
    prompt = _prompt(context, allowed, instructions, recalled)
    deciders = list(model._candidates())
    if isinstance(fallback, ChatModel):
        deciders += fallback._candidates()

    problems: list[str] = []
    for index, decider in enumerate(deciders):
        if isinstance(decider, RulesModel):
            outcome = _by_rules(decider, context, allowed)
        else:
            outcome = await _by_model(decider, prompt, allowed)
        if isinstance(outcome, Decision):
            if index == 0 and not problems:
                return outcome  # the common case: nothing to add
            return replace(outcome, fallback_used=index > 0, problems=tuple(problems))
        problems.append(outcome)
    if isinstance(fallback, str):
        return Decision(
            choice=fallback,
            reason="the fixed fallback choice: no model gave a valid decision",
            provider=FALLBACK_PROVIDER,
            model="",
            fallback_used=True,
            problems=tuple(problems),
        )
    raise DecisionError(problems)


def decide(
    model: ChatModel,
    context: Mapping[str, Any] | str,
    choices: Sequence[str],
    *,
    instructions: str = DEFAULT_INSTRUCTIONS,
    fallback: ChatModel | str | None = None,
    recalled: str = "",
) -> Decision:
    """Sync :func:`adecide`. Not for use inside a running event loop."""
    return run_sync(
        adecide(
            model,
            context,
            choices,
            instructions=instructions,
            fallback=fallback,
            recalled=recalled,
        ),
        what="decide()",
    )


def _check_choices(choices: Sequence[str]) -> tuple[str, ...]:
    if isinstance(choices, str):
        raise ValueError(f"decide(): choices must be a list of strings, got the string {choices!r}")
    allowed = tuple(choices)
    if not allowed:
        raise ValueError("decide(): choices is empty")
    bad = [choice for choice in allowed if not isinstance(choice, str) or not choice.strip()]
    if bad:
        raise ValueError(f"decide(): choices must be non-empty strings, got {bad}")
    if len(set(allowed)) != len(allowed):
        raise ValueError(f"decide(): choices repeat themselves: {list(allowed)}")
    return allowed


def _prompt(
    context: Mapping[str, Any] | str, allowed: tuple[str, ...], instructions: str, recalled: str
) -> tuple[Message, ...]:
    if isinstance(context, str):
        shown = context
    else:
        try:
            shown = "```json\n" + _context_json(context) + "\n```"
        except (TypeError, ValueError) as error:
            raise ValueError(f"decide(): context is not JSON-serializable: {error}") from None
    text = f"{instructions}\n\nAllowed choices: {', '.join(allowed)}\n\nContext:\n{shown}"
    if recalled.strip():
        text += f"\n\nRecalled from memory (earlier, similar cases):\n{recalled.strip()}"
    return (SystemMessage(_SYSTEM), HumanMessage(text))


_SCALARS = frozenset({str, int, float, bool, type(None)})
_FLAT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",\n ", ": "))


def _context_json(context: Mapping[str, Any]) -> str:
    """``json.dumps(context, ensure_ascii=False, indent=1)``, the same text.

    Any ``indent`` makes json fall back to its pure-Python encoder, a good part of a
    decision's own cost; a flat mapping of scalars (the usual context) gets the same layout
    from the C encoder through its separators (and one encoder, not one per call).
    """
    if context and all(type(value) in _SCALARS for value in context.values()):
        flat = _FLAT_JSON.encode(context)
        return "{\n " + flat[1:-1] + "\n}"
    return json.dumps(context, ensure_ascii=False, indent=1)


def _schema(allowed: tuple[str, ...]) -> ResponseFormat:
    return ResponseFormat(
        "decision",
        {
            "type": "object",
            "properties": {
                "choice": {"type": "string", "enum": list(allowed)},
                "reason": {"type": "string"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["choice", "reason", "confidence"],
            "additionalProperties": False,
        },
    )


def _by_rules(
    rules: RulesModel, context: Mapping[str, Any] | str, allowed: tuple[str, ...]
) -> Decision | str:
    """A decision from a rules table, or why it gave none."""
    where = rules.label
    if not isinstance(context, Mapping):
        return f"{where}: rules need the context as a mapping of fields, got text"
    match = rules.evaluate(context)
    if match is None:
        return f"{where}: no rule matched and the table has no default"
    if match.choice not in allowed:
        return f"{where}: chose {match.choice!r}, which is not one of {list(allowed)}"
    return Decision(
        choice=match.choice,
        reason=match.reason,
        confidence=1.0,
        provider=rules.provider,
        model=rules.model,
    )


async def _by_model(
    model: ChatModel, prompt: tuple[Message, ...], allowed: tuple[str, ...]
) -> Decision | str:
    """A decision from a model, with one repair of an invalid answer; or why it gave none."""
    request = ChatRequest(messages=prompt, response_format=_schema(allowed))
    try:
        answer = await model._generate(request)
    except Exception as error:
        return f"{model.label}: {type(error).__name__}: {error}"
    decision, problem = _read(answer, model, allowed)
    if decision is not None:
        return decision

    repair = HumanMessage(
        f"That answer is invalid: {problem}. Reply again with only the JSON object;"
        f' "choice" must be exactly one of: {", ".join(allowed)}.'
    )
    request = replace(request, messages=(*prompt, AIMessage(answer.content), repair))
    try:
        answer = await model._generate(request)
    except Exception as error:
        return f"{model.label}: invalid answer ({problem}); the repair failed: {error}"
    # The choice is the decision: a confidence still out of range after the repair is dropped
    # (small models under a JSON grammar write any number) rather than the choice thrown away.
    decision, second = _read(answer, model, allowed, drop_bad_confidence=True)
    if decision is not None:
        return replace(decision, repaired=True)
    return f"{model.label}: invalid answer ({problem}); still invalid after one repair ({second})"


def _read(
    answer: AIMessage, model: ChatModel, allowed: tuple[str, ...], drop_bad_confidence: bool = False
) -> tuple[Decision | None, str]:
    """Validate an answer: the decision, or None and what is wrong with it."""
    try:
        data = extract_json(answer.content)
    except ValueError:
        return None, "it is not a JSON object"
    if not isinstance(data, dict):
        return None, "it is not a JSON object"
    choice = data.get("choice")
    if not isinstance(choice, str) or choice.strip() not in allowed:
        return None, f'"choice" is {choice!r}, not one of the allowed choices'
    reason = data.get("reason", "")
    confidence = data.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not (math.isfinite(confidence) and 0 <= confidence <= 1)
    ):
        if not drop_bad_confidence:
            return None, f'"confidence" is {confidence!r}, not a number from 0 to 1'
        confidence = None
    decision = Decision(
        choice=choice.strip(),
        reason=reason if isinstance(reason, str) else str(reason),
        confidence=float(confidence) if confidence is not None else None,
        provider=answer.provider or model.provider,
        model=answer.model or model.model,
    )
    return decision, ""
