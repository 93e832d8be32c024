"""The provider registry, building models from configuration, and the optional SDKs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from belugaflow import ConfigError, MissingEnvVarError
from belugaflow.config import load_config_text
from belugaflow.llms import (
    ChatModel,
    FallbackModel,
    RulesModel,
    chat_model_from_config,
    new_chat_model,
    provider_names,
    register_provider,
)
from belugaflow.llms._openai import OpenAIChatModel
from belugaflow.llms._registry import _FACTORIES
from belugaflow.resilience import BreakerRegistry


def test_the_builtin_providers_are_registered() -> None:
    """openai, anthropic and rules are known without importing their SDKs."""
    assert {"openai", "anthropic", "rules"} <= set(provider_names())


def test_new_chat_model_builds_a_provider_model() -> None:
    """Options reach the provider's model."""
    model = new_chat_model("openai", api_key="sk-test", model="gpt-4o", breaker=None, timeout=5)
    assert isinstance(model, OpenAIChatModel)
    assert (model.provider, model.model, model.timeout) == ("openai", "gpt-4o", 5)


def test_unknown_providers_and_options_are_named() -> None:
    """A typo in the provider or an option says what is known."""
    with pytest.raises(ValueError, match=r"unknown LLM provider 'opanai' \(known: anthropic"):
        new_chat_model("opanai")
    with pytest.raises(
        TypeError, match=r"unknown option\(s\) temprature \(accepted: .*temperature"
    ):
        new_chat_model("openai", api_key="sk-test", temprature=0)


def test_a_provider_is_one_factory_and_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """register_provider adds a provider (by object or import path); names are not reused."""
    monkeypatch.setattr("belugaflow.llms._registry._FACTORIES", dict(_FACTORIES))

    def echo(*, default: str = "yes") -> ChatModel:
        return RulesModel([], default=default, name="echo")

    register_provider("echo", echo)
    assert new_chat_model("echo", default="no").model == "echo"
    with pytest.raises(ValueError, match="already registered"):
        register_provider("echo", echo)
    register_provider("table", "belugaflow.llms._rules:create")
    assert isinstance(new_chat_model("table", default="x"), RulesModel)


def test_llms_imports_without_the_sdks() -> None:
    """Importing belugaflow.llms loads neither SDK."""
    code = "import sys, belugaflow.llms; print('openai' in sys.modules, 'anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the openai package, the provider says which extra to install."""
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.delitem(sys.modules, "belugaflow.llms._openai")
    with pytest.raises(ImportError, match=r"pip install 'belugaflow\[llm\]'"):
        importlib.import_module("belugaflow.llms._openai")


CONFIG = """
llm:
  provider: openai
  fallbacks: [rules]
  openai:
    api_key: "${OPENAI_API_KEY}"
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9/v1
    timeout: 20s
    max_retries: 4
    temperature: 0
    rate_limit: {requests_per_minute: 500, tokens_per_minute: 90000}
    breaker: {failure_threshold: 3, recovery_timeout: 1m}
  rules:
    default: review
    table:
      - {name: out_of_stock, when: {in_stock: false}, choice: reject}
"""


def test_the_llm_section_builds_the_model_and_its_fallbacks() -> None:
    """provider, then fallbacks; every setting of the block lands on the model."""
    config = load_config_text(CONFIG, env={"OPENAI_API_KEY": "sk-from-env"})
    breakers = BreakerRegistry()
    model = chat_model_from_config(config, breakers=breakers)
    assert isinstance(model, FallbackModel)
    primary, rules = model.models
    assert isinstance(primary, OpenAIChatModel) and isinstance(rules, RulesModel)
    assert primary.model == "gpt-4o-mini" and primary.timeout == 20
    assert primary.retry.max_attempts == 5 and primary.temperature == 0
    assert primary.rate_limiter is not None
    assert primary.rate_limiter.requests_per_minute == 500
    assert primary.rate_limiter.tokens_per_minute == 90000
    breaker = breakers.get("llm.openai@127.0.0.1:9")
    assert primary.breaker is breaker is not None
    assert breaker.failure_threshold == 3 and breaker.recovery_timeout == 60
    assert rules.evaluate({"in_stock": False}) is not None
    assert rules.default == "review"


def test_one_provider_can_be_built_alone() -> None:
    """provider= builds that block only; breaker.enabled: false means no breaker."""
    config = load_config_text("llm: {openai: {api_key: sk-x, breaker: {enabled: false}}}", env={})
    model = chat_model_from_config(config.llm, provider="openai")
    assert isinstance(model, OpenAIChatModel) and model.breaker is None


def test_configuration_problems_name_the_key() -> None:
    """No provider, an unset key variable, or a bad rules table: errors say where."""
    with pytest.raises(ConfigError, match=r"llm\.provider"):
        chat_model_from_config(load_config_text("", env={}))
    with pytest.raises(MissingEnvVarError) as info:
        chat_model_from_config(load_config_text(CONFIG, env={}))
    assert info.value.key == "llm.openai.api_key"
    bad_rules = "llm: {provider: rules, rules: {table: [{when: {a: {over: 1}}, choice: x}]}}"
    with pytest.raises(
        ConfigError, match=r"rule 0: field 'a': unknown operator 'over'.*llm\.rules"
    ):
        chat_model_from_config(load_config_text(bad_rules, env={}))


def test_breaker_settings_must_agree_across_models() -> None:
    """Two configurations of one endpoint's breaker conflict visibly, not silently."""
    breakers = BreakerRegistry()
    config = load_config_text(CONFIG, env={"OPENAI_API_KEY": "sk"})
    chat_model_from_config(config, breakers=breakers)
    other = CONFIG.replace("failure_threshold: 3", "failure_threshold: 9")
    with pytest.raises(ConfigError, match="already exists with other settings"):
        chat_model_from_config(
            load_config_text(other, env={"OPENAI_API_KEY": "sk"}), breakers=breakers
        )
