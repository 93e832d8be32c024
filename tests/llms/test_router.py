"""LLMRouter as a graph's conditional edge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.llms.conftest import CHOICES
from tests.llms.fake_openai import completion, error
from tests.llms.fake_server import FakeServer

from belugaflow import Graph
from belugaflow._runnable import CallKind, call_kind
from belugaflow.llms import Decision, LLMRouter, RulesModel
from belugaflow.llms._openai import OpenAIChatModel


def order_graph(router: LLMRouter) -> Graph:
    """check → (approve | review | reject), each writing its name to ``outcome``."""
    graph = Graph("orders")
    graph.add_node("check", lambda state: {"checked": True})
    for name in ("pay", "manual_review", "cancel"):
        graph.add_node(name, lambda state, name=name: {"outcome": name})
    graph.add_conditional_edges(
        "check", router, {"approve": "pay", "review": "manual_review", "reject": "cancel"}
    )
    graph.set_entry_point("check")
    graph.set_finish_point(["pay", "manual_review", "cancel"])
    return graph


def test_a_router_is_an_async_callable_to_the_graph(rules: RulesModel) -> None:
    """Graphs classify routers as they classify nodes: this one is awaited, so a graph using
    it is async (sync invoke runs it on a private loop)."""
    router = LLMRouter(rules, choices=CHOICES)
    assert call_kind(router, where="router") is CallKind.ASYNC
    assert not order_graph(router).is_sync
    assert repr(router) == "<LLMRouter rules:rules: approve, review, reject>"


def test_the_rules_route_a_graph_without_any_llm(rules: RulesModel) -> None:
    """Sync invoke of a graph whose router is a rules table."""
    graph = order_graph(LLMRouter(rules, choices=CHOICES))
    assert graph.invoke({"in_stock": False})["outcome"] == "cancel"
    assert graph.invoke({"in_stock": True, "amount": 5000})["outcome"] == "manual_review"
    assert graph.invoke({"in_stock": True, "amount": 5})["outcome"] == "pay"


async def test_a_model_routes_the_graph_and_sees_only_its_context(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """The model's choice picks the route; the prompt holds the listed keys only."""
    decisions: list[Decision] = []
    router = LLMRouter(
        openai_model,
        choices=CHOICES,
        instructions="Approve, review or reject this order.",
        context=["amount"],
        fallback=rules,
        on_decision=decisions.append,
    )
    openai_server.script(completion(json.dumps({"choice": "review", "reason": "odd"})))
    state = await order_graph(router).ainvoke({"amount": 70, "card": "4111-1111"})
    assert state["outcome"] == "manual_review"
    prompt = openai_server.requests[0].body["messages"][1]["content"]
    assert '"amount": 70' in prompt and "4111" not in prompt
    (decision,) = decisions
    assert decision.provider == "openai" and not decision.fallback_used


async def test_the_graph_completes_with_the_fallback_while_the_provider_is_down(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """Every attempt fails with 503; the rules route the run to the right node anyway."""
    decisions: list[Decision] = []
    router = LLMRouter(openai_model, choices=CHOICES, fallback=rules, on_decision=decisions.append)
    openai_server.script(*[error(503, "overloaded")] * 3)
    state = await order_graph(router).ainvoke({"in_stock": False})
    assert state["outcome"] == "cancel"
    assert decisions[0].fallback_used and decisions[0].provider == "rules"
    assert len(openai_server.requests) == 3


async def test_routes_map_choices_to_route_keys(rules: RulesModel) -> None:
    """routes= translates a choice into the mapping's key, and a function picks the context."""
    router = LLMRouter(
        rules,
        choices=CHOICES,
        context=lambda state: {"amount": state["order"]["total"]},
        routes={"review": "reject"},
    )
    assert await router({"order": {"total": 5000}}) == "reject"
    decision = await router.adecide({"order": {"total": 5000}})
    assert decision.choice == "review"


@pytest.mark.parametrize(
    ("options", "error_type", "message"),
    [
        ({"routes": {"maybe": "x"}}, ValueError, r"routes name \['maybe'\]"),
        ({"choices": []}, ValueError, "choices is empty"),
        ({"model": "gpt-4"}, TypeError, "model must be a ChatModel"),
    ],
)
def test_bad_router_settings_are_rejected(
    rules: RulesModel, options: dict[str, Any], error_type: type[Exception], message: str
) -> None:
    """Settings are checked when the router is made, not when the graph runs."""
    settings: dict[str, Any] = {"model": rules, "choices": CHOICES, **options}
    model = settings.pop("model")
    with pytest.raises(error_type, match=message):
        LLMRouter(model, **settings)


def test_the_graph_registers_the_router_under_a_stable_name(rules: RulesModel) -> None:
    """The spec names the router; the graph's registry resolves that name to it."""
    router = LLMRouter(rules, choices=CHOICES)
    graph = order_graph(router)
    (route,) = graph.to_spec().routers
    assert route.ref == "orders@1.check.router"
    assert graph.registry.resolve(route.ref) is router
