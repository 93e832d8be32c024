"""The decision step through :mod:`belugaflow.llms`: a model decides, and the deterministic rule
(:func:`~.activities.default_decide`) takes over when it cannot.

:class:`LLMDecider` is a :data:`~.activities.Decider`, so the ``order.decide`` activity calls it
like any decision function and the workflow (and its recorded histories) stays as it is.
:func:`decider_from_config` picks the decider that ``config.yaml``'s ``llm:`` section asks for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import os
from collections.abc import Sequence

from temporalio import activity

from belugaflow import Config
from belugaflow.config import LLMConfig, ProviderConfig
from belugaflow.llms import ChatModel, DecisionError, LLMHook, adecide, chat_model_from_config
from belugaflow.resilience import BreakerRegistry

from .activities import Decider, Decision, DecisionInput, default_decide

__all__ = ["CHOICES", "DEFAULT_BUDGET", "INSTRUCTIONS", "LLMDecider", "decider_from_config"]

_log = logging.getLogger(__name__)

CHOICES = ("approve", "manual_review", "reject")
"""What the model may answer: the example's :data:`~.activities.ACTIONS`."""

INSTRUCTIONS = (
    "Decide what happens to this order from its value (amount, in cents), the customer's"
    " tier and how similar past orders of that tier ended: approve it, send it to manual"
    " review by a person, or reject it."
)

DEFAULT_BUDGET = 25.0
"""Seconds a decision may wait for the model, its retries included, before the fallback
decides."""

_RESERVE = 1.0
"""Seconds of an activity's start-to-close timeout kept for the fallback and for reporting the
result (a quarter of the timeout when that is less)."""


class LLMDecider:
    """Decide orders with a model; never fail for the model's sake, never outlast the activity.

    The model sees the order's amount, customer tier, product and quantity, how many similar
    past orders ended rejected or charged back (``similar_rejected``: a rules table can use
    it) and, under its own heading, the recalled past orders with their outcomes; it picks
    one of :data:`CHOICES` (:func:`~belugaflow.llms.adecide`: validated, one repair of an invalid
    answer, then the rest of a ``with_fallbacks`` chain). When no model decides — provider down,
    breaker open, answers still invalid, or no answer within the time limit — ``fallback``
    decides and the result says so (``fallback_used``, ``problems``).

    Args:
        model: Decides first: a provider model, a ``with_fallbacks`` chain, or a rules table.
        fallback: The last resort; default :func:`~.activities.default_decide`. None: a failed
            decision raises :class:`~belugaflow.llms.DecisionError`, which is not retryable, so
            on Temporal the activity fails at once instead of being retried.
        budget: Seconds the model may take in all, retries and timeouts included. Inside an
            activity also at most its start-to-close timeout less a reserve, so the fallback
            always runs within the same attempt. Default :data:`DEFAULT_BUDGET`.
        instructions: What to decide, in words. Default :data:`INSTRUCTIONS`.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        fallback: Decider | None = default_decide,
        budget: float = DEFAULT_BUDGET,
        instructions: str = INSTRUCTIONS,
    ) -> None:
        if not budget > 0:
            raise ValueError(f"LLMDecider: budget must be > 0 seconds, got {budget!r}")
        self.model = model
        self.fallback = fallback
        self.budget = budget
        self.instructions = instructions

    def __repr__(self) -> str:
        fallback = getattr(self.fallback, "__name__", repr(self.fallback))
        return f"<LLMDecider {self.model.label}, fallback {fallback}>"

    def time_limit(self) -> float:
        """Seconds the model may take for the decision being made now."""
        limit = self.budget
        if activity.in_activity():
            timeout = activity.info().start_to_close_timeout
            if timeout:
                seconds = timeout.total_seconds()
                limit = min(limit, seconds - min(_RESERVE, seconds / 4))
        return limit

    async def __call__(self, order: DecisionInput) -> Decision:
        context = {
            "amount": order.amount,
            "customer_tier": order.customer_tier,
            "product_id": order.product_id,
            "quantity": order.quantity,
            "similar_rejected": order.similar_rejected,
        }
        limit = self.time_limit()
        try:
            async with asyncio.timeout(limit):
                decided = await adecide(
                    self.model,
                    context,
                    CHOICES,
                    instructions=self.instructions,
                    recalled=order.recalled,
                )
        except DecisionError as error:
            problems = error.problems
        except TimeoutError:
            problems = (f"{self.model.label}: no decision within {limit:g} s",)
        else:
            return Decision(
                decided.choice,
                decided.reason,
                provider=decided.provider,
                model=decided.model,
                fallback_used=decided.fallback_used,
                confidence=decided.confidence,
                problems=decided.problems,
            )
        if self.fallback is None:
            raise DecisionError(problems)
        result = self.fallback(order)
        decision = await result if inspect.isawaitable(result) else result
        return dataclasses.replace(
            decision, fallback_used=True, problems=(*problems, *decision.problems)
        )

    async def aclose(self) -> None:
        """Close the model's connections on the running event loop."""
        await self.model.aclose()


def decider_from_config(
    config: Config,
    *,
    breakers: BreakerRegistry | None = None,
    hooks: Sequence[LLMHook] = (),
) -> Decider:
    """The decider ``config``'s ``llm:`` section asks for.

    ``llm.provider`` set and usable (its API key is set, or it has a ``base_url``, or it is a
    rules table) → an :class:`LLMDecider` of that provider, then each usable provider of
    ``llm.fallbacks``, then :func:`~.activities.default_decide`. Otherwise
    :func:`~.activities.default_decide` alone: what ``make run`` uses offline.

    Args:
        config: The loaded configuration.
        breakers: Where the providers' circuit breakers live; default the process-wide
            :data:`~belugaflow.llms.default_breakers`.
        hooks: Receive an :class:`~belugaflow.llms.LLMCall` per model call.

    Raises:
        ConfigError: A usable provider's settings are invalid; the message names the key.
        ImportError: The provider's SDK is not installed; the error names the extra.
    """
    llm = config.llm
    if llm.provider is None:
        return default_decide
    if not _usable(llm, llm.provider):
        _log.info(
            "llm.provider is %r but it has no API key: orders are decided by default_decide",
            llm.provider,
        )
        return default_decide
    names = [llm.provider]
    for name in llm.fallbacks:
        if name in names:
            continue
        if _usable(llm, name):
            names.append(name)
        else:
            _log.info("llm.fallbacks: %r has no API key and is left out", name)
    models = [
        chat_model_from_config(config, provider=name, breakers=breakers, hooks=hooks)
        for name in names
    ]
    return LLMDecider(models[0] if len(models) == 1 else models[0].with_fallbacks(models[1:]))


def _usable(llm: LLMConfig, name: str) -> bool:
    """Whether provider ``name`` can be asked: a key is set, or none is needed."""
    if name == "rules":
        return bool(llm.rules.table) or llm.rules.default is not None
    section = getattr(llm, name, None)
    if not isinstance(section, ProviderConfig):
        return True  # needs no key (local), or unknown: building it reports any problem
    if section.api_key is not None:
        return section.api_key.is_resolved and bool(section.api_key.get_secret_value())
    if section.base_url:
        return True  # a local or proxy endpoint may need no key
    return bool(os.environ.get(f"{name.upper()}_API_KEY"))
