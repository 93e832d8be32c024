"""LLMs for decisions and routing: chat models, providers, ``decide`` and ``LLMRouter``.

Build a model with :func:`new_chat_model` (``"openai"``, ``"anthropic"``, ``"rules"``) or from
configuration with :func:`chat_model_from_config`; ask it with ``agenerate`` / ``astream`` /
``abatch`` (or their sync twins). :func:`adecide` turns a model into a validated choice among
allowed values with a deterministic fallback; :class:`LLMRouter` makes that a graph route.
The SDK providers need ``pip install 'belugaflow[llm]'``; the rules provider needs nothing.
See ``docs/llms.md``.
"""

from belugaflow._public import show_public_paths as _show_public_paths

from ._config import chat_model_from_config
from ._decide import Decision, adecide, decide
from ._errors import (
    AllModelsFailedError,
    DecisionError,
    InvalidOutputError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from ._fallbacks import FallbackModel
from ._messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    Message,
    MessagesInput,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    Usage,
)
from ._model import ChatModel
from ._observe import LLMCall, LLMHook
from ._provider import ProviderModel, ProviderOptions, default_breakers
from ._ratelimit import RateLimiter
from ._registry import new_chat_model, provider_names, register_provider
from ._router import LLMRouter
from ._rules import Rule, RuleMatch, RulesModel
from ._structured import StructuredModel

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "AllModelsFailedError",
    "ChatModel",
    "Decision",
    "DecisionError",
    "FallbackModel",
    "HumanMessage",
    "InvalidOutputError",
    "LLMCall",
    "LLMHook",
    "LLMRouter",
    "Message",
    "MessagesInput",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderModel",
    "ProviderOptions",
    "ProviderRateLimitError",
    "ProviderRequestError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimiter",
    "Rule",
    "RuleMatch",
    "RulesModel",
    "StructuredModel",
    "SystemMessage",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "Usage",
    "adecide",
    "chat_model_from_config",
    "decide",
    "default_breakers",
    "new_chat_model",
    "provider_names",
    "register_provider",
]

_show_public_paths(globals())
