"""The provider registry: names → factories, imported only when first used.

A provider is one module with a ``create(**options) -> ChatModel`` factory, plus one line in
:data:`_FACTORIES` (or a :func:`register_provider` call for providers outside belugaflow).
Importing a provider's SDK happens in its module, so ``belugaflow.llms`` works without any.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable

from ._model import ChatModel
from ._provider import ProviderOptions

__all__ = ["ProviderFactory", "new_chat_model", "provider_names", "register_provider"]

ProviderFactory = Callable[..., ChatModel]
"""Builds a model from keyword options."""

# "module:attribute" strings are imported on first use.
_FACTORIES: dict[str, ProviderFactory | str] = {
    "openai": "belugaflow.llms._openai:create",
    "anthropic": "belugaflow.llms._anthropic:create",
    "local": "belugaflow.llms._local:create",
    "rules": "belugaflow.llms._rules:create",
}
_lock = threading.Lock()


def register_provider(name: str, factory: ProviderFactory | str, *, replace: bool = False) -> None:
    """Make ``new_chat_model(name, ...)`` build models with ``factory``.

    Args:
        name: The provider's name, as configuration files write it.
        factory: A callable taking keyword options and returning a :class:`ChatModel`, or
            its ``"module:attribute"`` path, imported on first use.
        replace: Allow replacing an existing provider (e.g. a built-in one).

    Raises:
        ValueError: ``name`` is taken and ``replace`` is false.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_provider(): name must be a non-empty string, got {name!r}")
    with _lock:
        if name in _FACTORIES and not replace:
            raise ValueError(
                f"provider {name!r} is already registered; pass replace=True to replace it"
            )
        _FACTORIES[name] = factory


def provider_names() -> list[str]:
    """The registered provider names, sorted."""
    return sorted(_FACTORIES)


def _factory(name: str) -> ProviderFactory:
    with _lock:
        factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown LLM provider {name!r} (known: {', '.join(provider_names())})")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        loaded: ProviderFactory = getattr(importlib.import_module(module), attribute)
        with _lock:
            _FACTORIES[name] = factory = loaded
    return factory


def _accepted(factory: ProviderFactory) -> set[str]:
    """The option names ``factory`` accepts."""
    names: set[str] = set()
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            # A factory taking **options (typed as ProviderOptions) accepts the shared options.
            names |= set(ProviderOptions.__annotations__)
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.add(parameter.name)
    return names


def new_chat_model(provider: str, **options: object) -> ChatModel:
    """Build a chat model of a registered provider.

    Example::

        llm = new_chat_model("openai", api_key=os.environ["OPENAI_API_KEY"], model="gpt-4o-mini")
        answer = await llm.agenerate([HumanMessage("...")])

    Args:
        provider: ``"openai"``, ``"anthropic"``, ``"rules"``, or any registered name.
        **options: The provider's options (see its model class); the SDK providers share
            :class:`ProviderOptions` (retry, breaker, rate_limiter, hooks, timeout...).

    Raises:
        ValueError: The provider is unknown, or an option value is invalid.
        TypeError: An option is unknown to the provider; the error lists the known ones.
        ImportError: The provider's SDK is not installed; the error names the extra.
    """
    factory = _factory(provider)
    accepted = _accepted(factory)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"new_chat_model({provider!r}): unknown option(s) {', '.join(unknown)}"
            f" (accepted: {', '.join(sorted(accepted))})"
        )
    return factory(**options)
