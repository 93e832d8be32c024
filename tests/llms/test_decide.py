"""decide(): validated choices, one repair, fallbacks, and who decided."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.llms.conftest import CHOICES
from tests.llms.fake_openai import completion, error
from tests.llms.fake_server import FakeServer

from belugaflow import CircuitBreaker, RetryPolicy
from belugaflow.llms import Decision, DecisionError, RulesModel, adecide, decide
from belugaflow.llms._openai import OpenAIChatModel

ORDER = {"order_id": "A-7", "amount": 2500, "in_stock": True}


def answer(choice: Any, reason: str = "because", confidence: Any = 0.8) -> str:
    """A decision answer as a model would write it."""
    return json.dumps({"choice": choice, "reason": reason, "confidence": confidence})


async def test_a_valid_answer_is_the_decision(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """One request; the decision records the choice, reason, confidence and the model."""
    openai_server.script(completion(answer("review", "amount is high", 0.7)))
    decision = await adecide(openai_model, ORDER, CHOICES, instructions="Check this order.")
    assert decision == Decision(
        choice="review",
        reason="amount is high",
        confidence=0.7,
        provider="openai",
        model="gpt-test",
    )
    (request,) = openai_server.requests
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["choice"]["enum"] == CHOICES
    prompt = request.body["messages"][1]["content"]
    assert prompt.startswith("Check this order.")
    assert "Allowed choices: approve, review, reject" in prompt
    assert '"order_id": "A-7"' in prompt


@pytest.mark.parametrize(
    "context",
    [
        {"order_id": "A-7", "amount": 2500.5, "vip": False, "note": None, "name": 'Zoë "Z"\n'},
        {"order": {"id": "A-7", "lines": [1, 2]}, "amount": 3},
        {},
    ],
    ids=["flat", "nested", "empty"],
)
async def test_the_context_is_sent_as_indented_json(
    openai_model: OpenAIChatModel, openai_server: FakeServer, context: dict[str, Any]
) -> None:
    """Flat or nested, the prompt holds the context exactly as json.dumps(indent=1) writes it."""
    openai_server.script(completion(answer("approve")))
    await adecide(openai_model, context, CHOICES)
    prompt = openai_server.requests[0].body["messages"][1]["content"]
    shown = json.dumps(context, ensure_ascii=False, indent=1)
    assert prompt.endswith(f"Context:\n```json\n{shown}\n```")


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (answer("maybe"), "\"choice\" is 'maybe'"),
        ("I would approve it.", "not a JSON object"),
        (answer("approve", confidence=1.5), '"confidence" is 1.5'),
        ('["approve"]', "not a JSON object"),
    ],
)
async def test_an_invalid_answer_gets_one_repair(
    openai_model: OpenAIChatModel, openai_server: FakeServer, bad: str, problem: str
) -> None:
    """The repair prompt shows the bad answer and says what is wrong; the fix is accepted."""
    openai_server.script(completion(bad), completion(answer("approve")))
    decision = await adecide(openai_model, ORDER, CHOICES)
    assert decision.choice == "approve" and decision.repaired and not decision.fallback_used
    first, repair = openai_server.bodies()
    assert repair["messages"][:2] == first["messages"]
    assert repair["messages"][2] == {"role": "assistant", "content": bad}
    assert problem in repair["messages"][3]["content"]


async def test_a_confidence_still_out_of_range_after_the_repair_is_dropped(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """The choice is the decision: it is kept, and the bad confidence becomes None."""
    openai_server.script(
        completion(answer("approve", confidence=120)), completion(answer("reject", confidence=7))
    )
    decision = await adecide(openai_model, ORDER, CHOICES)
    assert decision.choice == "reject" and decision.confidence is None
    assert decision.repaired and not decision.fallback_used


async def test_still_invalid_after_the_repair_the_fallback_decides(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """Exactly two requests, then the rules decide; the decision says why."""
    openai_server.script(completion(answer("maybe")), completion(answer("perhaps")))
    decision = await adecide(openai_model, ORDER, CHOICES, fallback=rules)
    assert len(openai_server.requests) == 2
    assert decision.choice == "review" and decision.provider == "rules"
    assert decision.fallback_used and decision.confidence == 1.0
    (problem,) = decision.problems
    assert "still invalid after one repair" in problem and "'perhaps'" in problem


async def test_while_the_provider_is_down_the_fallback_decides(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """After the model's retries are spent, the rules decide."""
    openai_server.script(*[error(500, "internal error")] * 3)
    decision = await adecide(openai_model, ORDER, CHOICES, fallback=rules)
    assert len(openai_server.requests) == 3
    assert decision.provider == "rules" and decision.fallback_used
    assert "ProviderUnavailableError" in decision.problems[0]


async def test_an_open_breaker_hands_over_to_the_fallback_without_a_request(
    openai_server: FakeServer, rules: RulesModel
) -> None:
    """Once the breaker is open, decisions come from the rules and nothing is sent."""
    breaker = CircuitBreaker("decide-test", failure_threshold=1)
    model = OpenAIChatModel(
        model="gpt-test",
        base_url=f"{openai_server.url}/v1",
        breaker=breaker,
        retry=RetryPolicy.none(),
    )
    openai_server.script(error(503, "overloaded"))
    await adecide(model, ORDER, CHOICES, fallback=rules)
    sent = len(openai_server.requests)
    decision = await adecide(model, ORDER, CHOICES, fallback=rules)
    await model.aclose()
    assert len(openai_server.requests) == sent == 1
    assert decision.provider == "rules" and "CircuitOpenError" in decision.problems[0]


async def test_with_fallbacks_chains_are_followed_in_order(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """model.with_fallbacks([rules]) decides like fallback=rules."""
    openai_server.script(error(401, "Incorrect API key provided"))
    decision = await adecide(openai_model.with_fallbacks([rules]), ORDER, CHOICES)
    assert decision.provider == "rules" and decision.fallback_used
    assert "Incorrect API key provided" in decision.problems[0]
    assert len(openai_server.requests) == 1


async def test_a_fixed_fallback_choice_is_the_last_resort(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """fallback="review" decides when every model failed."""
    openai_server.script(completion("?"), completion("?"))
    decision = await adecide(openai_model, ORDER, CHOICES, fallback="review")
    assert decision.choice == "review" and decision.provider == "fallback"
    assert decision.fallback_used and decision.confidence is None


async def test_without_fallback_no_decision_is_an_error(
    openai_model: OpenAIChatModel, openai_server: FakeServer
) -> None:
    """DecisionError lists why each decider gave no decision."""
    openai_server.script(completion("?"), completion("?"))
    with pytest.raises(DecisionError, match="still invalid after one repair") as info:
        await adecide(openai_model, ORDER, CHOICES)
    assert len(info.value.problems) == 1 and info.value.retryable is False


async def test_the_rules_are_asked_directly_and_checked_too(rules: RulesModel) -> None:
    """A rules table decides from the context itself; a choice it may not make is skipped."""
    decision = await adecide(rules, {"in_stock": False}, CHOICES)
    assert decision.choice == "reject" and decision.reason.startswith("out_of_stock matched")
    narrow = await adecide(rules, {"in_stock": False}, ["approve", "review"], fallback="review")
    assert narrow.provider == "fallback"
    assert "chose 'reject', which is not one of" in narrow.problems[0]
    with pytest.raises(DecisionError, match="rules need the context as a mapping"):
        await adecide(rules, "an order of 2500", CHOICES)


@pytest.mark.parametrize(
    ("choices", "options", "message"),
    [
        ([], {}, "choices is empty"),
        (["a", "a"], {}, "repeat themselves"),
        ("ab", {}, "got the string 'ab'"),
        (["a", ""], {}, "non-empty strings"),
        (["a", "b"], {"fallback": "c"}, "fallback choice 'c' is not one of"),
    ],
)
async def test_bad_arguments_are_rejected_before_any_request(
    openai_model: OpenAIChatModel,
    openai_server: FakeServer,
    choices: Any,
    options: dict[str, Any],
    message: str,
) -> None:
    """Invalid choices or fallback fail at once, naming the problem."""
    with pytest.raises(ValueError, match=message):
        await adecide(openai_model, ORDER, choices, **options)
    with pytest.raises(ValueError, match="not JSON-serializable"):
        await adecide(openai_model, {"when": object()}, CHOICES)
    assert openai_server.requests == []


async def test_models_and_fallbacks_must_be_models(rules: RulesModel) -> None:
    """A model name or a number where a model belongs is a TypeError, said plainly."""
    with pytest.raises(TypeError, match="model must be a ChatModel, got 'gpt-4'"):
        await adecide("gpt-4", ORDER, CHOICES)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fallback must be a ChatModel, a choice or None"):
        await adecide(rules, ORDER, CHOICES, fallback=3)  # type: ignore[arg-type]


def test_decisions_round_trip_through_plain_data(rules: RulesModel) -> None:
    """to_dict() is JSON-ready and from_dict() rebuilds the same decision (sync decide)."""
    decision = decide(rules, {"amount": 5000}, CHOICES)
    data = json.loads(json.dumps(decision.to_dict()))
    assert Decision.from_dict(data) == decision
    assert data["provider"] == "rules" and data["choice"] == "review"
