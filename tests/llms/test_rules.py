"""The rules provider: decision-table semantics, validation, and use as a chat model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from belugaflow.llms import HumanMessage, ProviderRequestError, Rule, RulesModel, new_chat_model


def choice_of(rules: RulesModel, context: dict[str, Any]) -> str | None:
    """The choice a table makes for ``context`` (None when it makes none)."""
    match = rules.evaluate(context)
    return None if match is None else match.choice


@pytest.mark.parametrize(
    ("condition", "value", "holds"),
    [
        (3, 3, True),
        (3, 4, False),
        ({"eq": "gold"}, "gold", True),
        ({"ne": "gold"}, "silver", True),
        ({"ne": "gold"}, "gold", False),
        ({"gt": 10}, 11, True),
        ({"gt": 10}, 10, False),
        ({"gte": 10}, 10, True),
        ({"lt": 10}, 9.5, True),
        ({"lte": 10}, 11, False),
        ({"in": ["US", "CA"]}, "CA", True),
        ({"in": ["US", "CA"]}, "FR", False),
        ({"not_in": ["US", "CA"]}, "FR", True),
        ({"gt": 10, "lt": 20}, 15, True),
        ({"gt": 10, "lt": 20}, 25, False),
        ({"exists": True}, None, True),
        ({"gt": 10}, "abc", False),  # cannot compare: the condition does not hold
    ],
)
def test_operators(condition: Any, value: Any, holds: bool) -> None:
    """Each operator compares the field's value with the rule's."""
    rules = RulesModel([Rule("yes", {"x": condition})], default="no")
    assert choice_of(rules, {"x": value}) == ("yes" if holds else "no")


def test_a_missing_field_fails_every_condition_but_exists_false() -> None:
    """Conditions on an absent field do not hold, except ``exists: false``."""
    for condition in ({"eq": None}, {"ne": 1}, {"not_in": [1]}, {"exists": True}):
        assert choice_of(RulesModel([Rule("yes", {"x": condition})], default="no"), {}) == "no"
    assert choice_of(RulesModel([Rule("yes", {"x": {"exists": False}})]), {}) == "yes"


def test_dotted_fields_reach_into_nested_mappings() -> None:
    """``customer.tier`` reads context["customer"]["tier"]; a literal dotted key wins."""
    rules = RulesModel([Rule("vip", {"customer.tier": "gold"})], default="normal")
    assert choice_of(rules, {"customer": {"tier": "gold"}}) == "vip"
    assert choice_of(rules, {"customer": "gold"}) == "normal"
    assert choice_of(rules, {"customer.tier": "gold"}) == "vip"


def test_the_first_matching_rule_wins_and_says_why(rules: RulesModel) -> None:
    """Rules are tried in order; the reason names the rule and its conditions."""
    match = rules.evaluate({"in_stock": False, "amount": 5000})
    assert match is not None and match.choice == "reject" and match.rule == "out_of_stock"
    assert match.reason == "out_of_stock matched: in_stock == False"
    default = rules.evaluate({"in_stock": True, "amount": 10})
    assert default is not None and default.choice == "approve" and default.rule is None
    unnamed = RulesModel([Rule("x", {"a": {"gte": 1}})]).evaluate({"a": 1})
    assert unnamed is not None and unnamed.reason == "rule 0 matched: a >= 1"


def test_no_match_without_default_is_no_decision() -> None:
    """Without a default, a context no rule matches gets None."""
    assert RulesModel([Rule("x", {"a": 1})]).evaluate({"a": 2}) is None


def test_choices_lists_what_the_table_can_decide(rules: RulesModel) -> None:
    """Every rule's choice plus the default."""
    assert rules.choices == {"reject", "review", "approve"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"choice": "x", "when": {"a": {"greater": 1}}}, "rule 0: field 'a': unknown operator"),
        ({"choice": "x", "when": {"a": {"in": "US"}}}, "field 'a': in needs a list"),
        ({"choice": "x", "when": {"a": {"exists": "yes"}}}, "exists needs true or false"),
        ({"choice": "x", "when": {"a": {}}}, "field 'a' has an empty condition"),
        ({"choice": "", "when": {}}, "choice must be a non-empty string"),
        ({"choise": "x"}, "expected keys choice, when, name"),
        ({"name": "n", "choice": "x", "when": {"a": {"lt": 1, "bad": 2}}}, "rule 0 ('n')"),
    ],
)
def test_malformed_rules_are_rejected_naming_rule_and_field(
    row: dict[str, Any], message: str
) -> None:
    """A bad rule fails construction with a message that says where."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RulesModel([row])


def test_the_factory_needs_rules_or_a_default() -> None:
    """An empty table without default could never decide."""
    with pytest.raises(ValueError, match="table of rules, a default choice"):
        new_chat_model("rules")
    assert new_chat_model("rules", default="approve").generate("{}").content.startswith("{")


async def test_as_a_chat_model_it_reads_the_json_in_the_last_human_message(
    rules: RulesModel,
) -> None:
    """The rules answer a decision prompt with a JSON decision, without tokens."""
    prompt = 'Decide.\n\nContext:\n```json\n{"in_stock": true, "amount": 2500}\n```'
    answer = await rules.agenerate([HumanMessage("ignored {"), HumanMessage(prompt)])
    assert json.loads(answer.content) == {
        "choice": "review",
        "reason": "big_order matched: amount > 1000",
        "confidence": 1.0,
    }
    assert answer.provider == "rules" and answer.usage is not None
    assert answer.usage.total_tokens == 0


async def test_as_a_chat_model_it_needs_input_fields(rules: RulesModel) -> None:
    """Without a JSON object to read, or without a match, the rules refuse (non-retryable)."""
    with pytest.raises(ProviderRequestError, match="JSON object in the last human message"):
        await rules.agenerate("no fields here")
    strict = RulesModel([Rule("x", {"a": 1})])
    with pytest.raises(ProviderRequestError, match="no rule matched"):
        await strict.agenerate('{"a": 2}')
