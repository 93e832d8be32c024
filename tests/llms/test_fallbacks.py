"""with_fallbacks: the next model answers when one fails; answers say who gave them."""

from __future__ import annotations

import pytest
from tests.llms.fake_openai import completion, error, fake_openai, stream
from tests.llms.fake_server import FakeServer

from belugaflow import RetryPolicy
from belugaflow.llms import (
    AllModelsFailedError,
    FallbackModel,
    ProviderRequestError,
    ProviderUnavailableError,
    RulesModel,
    Tool,
)
from belugaflow.llms._openai import OpenAIChatModel

PROMPT = '{"in_stock": false}'


async def test_the_next_model_answers_when_one_fails(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """After the primary's retries, the rules answer; the answer names them."""
    openai_server.script(*[error(500, "down")] * 3)
    answer = await openai_model.with_fallbacks([rules]).agenerate(PROMPT)
    assert answer.provider == "rules" and '"reject"' in answer.content
    assert len(openai_server.requests) == 3


async def test_two_providers_then_rules(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """primary → secondary → rules: the secondary answers once the primary gives up."""
    secondary = fake_openai().start()
    try:
        backup = OpenAIChatModel(model="backup", base_url=f"{secondary.url}/v1", breaker=None)
        openai_server.script(error(401, "bad key"))
        secondary.script(completion("from backup", model="backup"))
        answer = await openai_model.with_fallbacks([backup, rules]).agenerate("hi")
        await backup.aclose()
    finally:
        secondary.stop()
    assert answer.content == "from backup" and answer.model == "backup"


async def test_when_all_fail_every_error_is_listed(
    openai_model: OpenAIChatModel, openai_server: FakeServer, rules: RulesModel
) -> None:
    """AllModelsFailedError names each model and its error; retryable if any was."""
    openai_server.script(*[error(503, "overloaded")] * 3)
    chain = openai_model.with_fallbacks([rules])
    with pytest.raises(AllModelsFailedError) as info:
        await chain.agenerate("no fields")
    text = str(info.value)
    assert "openai:gpt-test: ProviderUnavailableError" in text and "rules:rules" in text
    unavailable, refused = info.value.errors
    assert isinstance(unavailable, ProviderUnavailableError)
    assert isinstance(refused, ProviderRequestError)
    assert info.value.retryable


async def test_a_stream_falls_back_before_its_first_chunk(
    openai_server: FakeServer, rules: RulesModel
) -> None:
    """A stream that cannot start is replaced by the next model's."""
    model = OpenAIChatModel(
        model="gpt-test",
        base_url=f"{openai_server.url}/v1",
        breaker=None,
        retry=RetryPolicy.none(),
    )
    openai_server.script(error(500, "down"))
    chunks = [chunk async for chunk in model.with_fallbacks([rules]).astream(PROMPT)]
    await model.aclose()
    assert [chunk.provider for chunk in chunks] == ["rules"]
    openai_server.script(stream(["a", "b"]))
    chain = model.with_fallbacks([rules])
    assert "".join([c.content async for c in chain.astream("hi")]) == "ab"
    await model.aclose()


def test_chains_flatten_and_bind_tools(openai_model: OpenAIChatModel, rules: RulesModel) -> None:
    """Nested chains become one; binding tools keeps the chain and its models."""
    other = RulesModel([], default="approve", name="other")
    chain = openai_model.with_fallbacks([rules]).with_fallbacks([other])
    assert isinstance(chain, FallbackModel) and chain.models == (openai_model, rules, other)
    assert repr(chain) == "<FallbackModel openai:gpt-test -> rules:rules -> rules:other>"
    bound = chain.bind_tools([Tool("lookup")])
    assert isinstance(bound, FallbackModel) and bound.models == chain.models
    with pytest.raises(ValueError, match="at least one fallback"):
        openai_model.with_fallbacks([])
    with pytest.raises(TypeError, match="model 1 is not a ChatModel"):
        openai_model.with_fallbacks(["rules"])  # type: ignore[list-item]
