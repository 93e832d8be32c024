"""``LLMRouter``: a graph router whose route is a :func:`decide` call."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._decide import DEFAULT_INSTRUCTIONS, Decision, _check_choices, adecide
from ._model import ChatModel

__all__ = ["LLMRouter"]

ContextFn = Callable[[Mapping[str, Any]], Mapping[str, Any] | str]


@dataclass(frozen=True, slots=True)
class _Settings:
    model: ChatModel
    choices: tuple[str, ...]
    instructions: str
    context: tuple[str, ...] | ContextFn | None
    fallback: ChatModel | str | None
    routes: dict[str, str]
    on_decision: Callable[[Decision], None] | None


async def _route(settings: _Settings, state: Mapping[str, Any]) -> str:
    decision = await _decide(settings, state)
    if settings.on_decision is not None:
        settings.on_decision(decision)
    route: str = settings.routes.get(decision.choice, decision.choice)
    return route


async def _decide(settings: _Settings, state: Mapping[str, Any]) -> Decision:
    context = settings.context
    if context is None:
        shown: Mapping[str, Any] | str = dict(state)
    elif callable(context):
        shown = context(state)
    else:
        shown = {key: state[key] for key in context if key in state}
    return await adecide(
        settings.model,
        shown,
        settings.choices,
        instructions=settings.instructions,
        fallback=settings.fallback,
    )


# Why a partial: graphs call a router as router(state) and await the result only if
# inspect.iscoroutinefunction(router) says so. That looks through functools.partial, but not
# through an object's async __call__, so a router object must be a partial of an async function.
class LLMRouter(functools.partial[Awaitable[str]]):
    """Route a graph by a model's decision: ``graph.add_conditional_edges("check", router,
    {...})``.

    Called with the state, it runs :func:`~belugaflow.llms.adecide` on (part of) the state and
    returns the chosen route: the choice itself, or ``routes[choice]``. With a fallback it
    always returns a valid route, even while every provider is down.

    Example::

        router = LLMRouter(
            model,
            choices=["approve", "review", "reject"],
            instructions="Approve, review or reject this order.",
            context=["amount", "customer_tier"],
            fallback=rules,
        )
        graph.add_conditional_edges("check", router, {"approve": "pay", "review": "queue",
                                                      "reject": "cancel"})

    Args:
        model: Decides (a model, a ``with_fallbacks`` chain or a rules table).
        choices: The allowed choices.
        instructions: What to decide, in words.
        context: What of the state the model sees: None for all of it, a list of keys, or a
            function of the state that returns a mapping or text. Keep it small: it is the
            prompt.
        fallback: Decides when the models fail: a model (typically rules) or one choice.
        routes: Maps a choice to a route key, where they differ. Default: the choice is the
            route.
        on_decision: Called with each :class:`Decision` (for audit logs); must not raise.

    Raises:
        ValueError: ``choices`` is invalid, or ``routes`` maps a value that is not a choice.
    """

    model: ChatModel
    choices: tuple[str, ...]

    def __new__(
        cls,
        model: ChatModel,
        *,
        choices: Sequence[str],
        instructions: str = DEFAULT_INSTRUCTIONS,
        context: Sequence[str] | ContextFn | None = None,
        fallback: ChatModel | str | None = None,
        routes: Mapping[str, str] | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> LLMRouter:
        if not isinstance(model, ChatModel):
            raise TypeError(f"LLMRouter: model must be a ChatModel, got {model!r}")
        allowed = _check_choices(choices)
        routes = dict(routes or {})
        stray = sorted(set(routes) - set(allowed))
        if stray:
            raise ValueError(
                f"LLMRouter: routes name {stray}, which are not choices {list(allowed)}"
            )
        if isinstance(context, str):
            context = [context]
        settings = _Settings(
            model=model,
            choices=allowed,
            instructions=instructions,
            context=None if context is None else (context if callable(context) else tuple(context)),
            fallback=fallback,
            routes=routes,
            on_decision=on_decision,
        )
        router = super().__new__(cls, _route, settings)
        router.model = model
        router.choices = allowed
        return router

    def __repr__(self) -> str:
        return f"<LLMRouter {self.model.label}: {', '.join(self.choices)}>"

    async def adecide(self, state: Mapping[str, Any]) -> Decision:
        """The decision for ``state``, without mapping it to a route (e.g. to store it)."""
        settings: _Settings = self.args[0]
        return await _decide(settings, state)
