"""Build models from the ``llm:`` section of ``config.yaml``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from belugaflow._errors import ConfigError
from belugaflow.config import (
    BreakerConfig,
    Config,
    LLMConfig,
    LocalConfig,
    OpenAIConfig,
    ProviderConfig,
)
from belugaflow.resilience import BreakerRegistry, CircuitBreaker

from ._errors import ProviderRequestError
from ._model import ChatModel
from ._observe import LLMHook
from ._provider import DEFAULT_RETRY, breaker_name, default_breakers
from ._ratelimit import RateLimiter
from ._registry import new_chat_model

__all__ = ["chat_model_from_config"]


def chat_model_from_config(
    config: Config | LLMConfig,
    *,
    provider: str | None = None,
    breakers: BreakerRegistry | None = None,
    hooks: Sequence[LLMHook] = (),
) -> ChatModel:
    """Build the model the ``llm:`` section describes, with its fallbacks.

    ``llm.provider`` answers first, then each of ``llm.fallbacks`` in order (e.g.
    ``[anthropic, rules]``). Each SDK provider gets its block's settings: key, model,
    endpoint, timeout, retries, rate limit and circuit breaker.

    Args:
        config: The whole configuration, or its ``llm`` section.
        provider: Build this provider alone instead of ``llm.provider`` and its fallbacks.
        breakers: Where the providers' circuit breakers live. Default
            :data:`~belugaflow.llms.default_breakers`.
        hooks: Receive an :class:`LLMCall` per call of every model built.

    Raises:
        ConfigError: No provider is configured, or a provider's settings are invalid; the
            message names the key.
        MissingEnvVarError: An API key comes from an unset ``${VAR}``.
        ImportError: A provider's SDK is not installed; the error names the extra.
    """
    llm = config.llm if isinstance(config, Config) else config
    if provider is not None:
        names = [provider]
    elif llm.provider is None:
        raise ConfigError("no LLM provider is configured", key="llm.provider")
    else:
        names = [llm.provider, *(name for name in llm.fallbacks if name != llm.provider)]
    registry = breakers if breakers is not None else default_breakers
    models = [_build(name, llm, registry, hooks) for name in names]
    return models[0] if len(models) == 1 else models[0].with_fallbacks(models[1:])


def _build(
    name: str, llm: LLMConfig, breakers: BreakerRegistry, hooks: Sequence[LLMHook]
) -> ChatModel:
    options: dict[str, object] = {"hooks": tuple(hooks), "capture_content": llm.capture_content}
    section = getattr(llm, name, None)
    try:
        if name == "rules":
            options["table"] = [row.model_dump() for row in llm.rules.table]
            options["default"] = llm.rules.default
        elif isinstance(section, ProviderConfig):
            options.update(_provider_options(name, section, breakers))
        elif isinstance(section, LocalConfig):
            options.update(_local_options(section, breakers))
        else:
            raise ValueError(f"no settings block for provider {name!r}")
        return new_chat_model(name, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error), key=f"llm.{name}") from error


def _provider_options(
    name: str, section: ProviderConfig, breakers: BreakerRegistry
) -> dict[str, object]:
    options: dict[str, object] = {}
    for field in ("api_key", "model", "base_url", "timeout", "max_tokens", "temperature"):
        value = getattr(section, field)
        if value is not None:
            options[field] = value
    if isinstance(section, OpenAIConfig):
        options["structured_output"] = section.structured_output
    if section.max_retries is not None:
        options["retry"] = dataclasses.replace(DEFAULT_RETRY, max_attempts=section.max_retries + 1)
    limit = section.rate_limit
    if limit.requests_per_minute or limit.tokens_per_minute:
        options["rate_limiter"] = RateLimiter(
            requests_per_minute=limit.requests_per_minute,
            tokens_per_minute=limit.tokens_per_minute,
        )
    options["breaker"] = _breaker(name, section.base_url, section.breaker, breakers)
    return options


def _local_options(section: LocalConfig, breakers: BreakerRegistry) -> dict[str, object]:
    options: dict[str, object] = {
        "threads": section.threads,
        "context_size": section.context_size,
        "breaker": _breaker("local", None, section.breaker, breakers),
    }
    for field in ("model_path", "timeout", "max_tokens", "temperature"):
        value = getattr(section, field)
        if value is not None:
            options[field] = value
    return options


def _breaker(
    name: str, base_url: str | None, config: BreakerConfig, breakers: BreakerRegistry
) -> CircuitBreaker | None:
    if not config.enabled:
        return None
    return breakers.get_or_create(
        breaker_name(name, base_url),
        failure_threshold=config.failure_threshold,
        recovery_timeout=config.recovery_timeout,
        excluded=(ProviderRequestError,),
    )
