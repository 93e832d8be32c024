"""The ``llm`` section's settings for decisions: fallbacks, retries, rate limits, breakers and
the rules table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from belugaflow import ConfigError
from belugaflow.config import Config, load_config_text


def load(text: str, **env: str) -> Config:
    """Load YAML text with exactly the given environment."""
    return load_config_text(text, env=env)


def test_defaults_change_nothing_for_existing_files() -> None:
    """Without the new keys: no fallbacks, no captured content, breaker on, no rate limit."""
    llm = load("llm: {provider: openai, openai: {model: gpt-4}}").llm
    assert llm.fallbacks == [] and llm.capture_content is False
    assert llm.openai.max_retries is None and llm.openai.max_tokens is None
    assert llm.openai.rate_limit.requests_per_minute is None
    assert llm.openai.breaker.enabled and llm.openai.breaker.failure_threshold == 5
    assert llm.openai.breaker.recovery_timeout == timedelta(seconds=30)
    assert llm.rules.table == [] and llm.rules.default is None


def test_every_new_key_is_read() -> None:
    """Fallbacks, per-provider settings and the rules table load as written."""
    llm = load(
        """
llm:
  provider: anthropic
  fallbacks: [openai, rules]
  capture_content: true
  anthropic:
    max_retries: 0
    max_tokens: 300
    temperature: 0.2
    rate_limit: {requests_per_minute: 50, tokens_per_minute: 40000}
    breaker: {failure_threshold: 2, recovery_timeout: 2m}
  rules:
    default: review
    table:
      - {name: oos, when: {in_stock: false}, choice: reject}
      - when: {amount: {gt: 1000}, customer.tier: {in: [gold]}}
        choice: approve
"""
    ).llm
    assert llm.fallbacks == ["openai", "rules"] and llm.capture_content
    block = llm.anthropic
    assert (block.max_retries, block.max_tokens, block.temperature) == (0, 300, 0.2)
    assert block.rate_limit.tokens_per_minute == 40000
    assert block.breaker.recovery_timeout == timedelta(minutes=2)
    first, second = llm.rules.table
    assert (first.name, first.when, first.choice) == ("oos", {"in_stock": False}, "reject")
    assert second.name is None and second.when["customer.tier"] == {"in": ["gold"]}


def test_nested_settings_can_come_from_the_environment() -> None:
    """BELUGAFLOW__LLM__OPENAI__RATE_LIMIT__REQUESTS_PER_MINUTE sets one nested key."""
    llm = load(
        "",
        BELUGAFLOW__LLM__OPENAI__RATE_LIMIT__REQUESTS_PER_MINUTE="120",
        BELUGAFLOW__LLM__OPENAI__BREAKER__ENABLED="false",
    ).llm
    assert llm.openai.rate_limit.requests_per_minute == 120
    assert llm.openai.breaker.enabled is False


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("llm: {fallbacks: [rules, rules]}", "llm.fallbacks"),
        ("llm: {fallbacks: [gemini]}", "llm.fallbacks.0"),
        ("llm: {openai: {max_retries: -1}}", "llm.openai.max_retries"),
        ("llm: {openai: {temperature: 3}}", "llm.openai.temperature"),
        ("llm: {openai: {max_tokens: true}}", "llm.openai.max_tokens"),
        ("llm: {openai: {rate_limit: {requests_per_minute: 0}}}", "llm.openai.rate_limit"),
        ("llm: {openai: {breaker: {failure_threshold: 0}}}", "llm.openai.breaker"),
        ("llm: {openai: {breaker: {recovery_timeout: 0s}}}", "llm.openai.breaker"),
        ("llm: {rules: {table: [{when: {a: 1}}]}}", "llm.rules.table.0.choice"),
        ("llm: {rules: {table: [{choice: x, if: {a: 1}}]}}", "llm.rules.table.0.if"),
        ("llm: {rules: {default: ''}}", "llm.rules.default"),
    ],
)
def test_bad_values_name_their_key(text: str, key: str) -> None:
    """Each invalid setting is reported with its dotted key."""
    with pytest.raises(ConfigError) as info:
        load(text)
    assert key in str(info.value)
