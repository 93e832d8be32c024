"""``LLMRouter``: a graph router whose route is a :func:`decide` call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._decide import DEFAULT_INSTRUCTIONS, Decision, _check_choices, adecide
from ._model import ChatModel

__all__ = ["LLMRouter"]

ContextFn = Callable[[Mapping[str, Any]], Mapping[str, Any] | str]


class LLMRouter:
    """Route a graph by a model's decision: ``graph.add_conditional_edges("check", router,
    {...})``.

    Called with the state, it runs :func:`~belugaflow.llms.adecide` on (part of) the state and
    returns the chosen route: the choice itself, or ``routes[choice]``. With a fallback it
    always returns a valid route, even while every provider is down. Its ``__call__`` is a
    coroutine function, so graphs await it (and run it on an event loop, like an async node).

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
        TypeError: ``model`` is not a :class:`ChatModel`.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        choices: Sequence[str],
        instructions: str = DEFAULT_INSTRUCTIONS,
        context: Sequence[str] | ContextFn | None = None,
        fallback: ChatModel | str | None = None,
        routes: Mapping[str, str] | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
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
        self.model = model
        self.choices = allowed
        self.instructions = instructions
        self.context: tuple[str, ...] | ContextFn | None = (
            None if context is None else (context if callable(context) else tuple(context))
        )
        self.fallback = fallback
        self.routes = routes
        self.on_decision = on_decision

    def __repr__(self) -> str:
        return f"<LLMRouter {self.model.label}: {', '.join(self.choices)}>"

    async def __call__(self, state: Mapping[str, Any]) -> str:
        """Decide for ``state`` and return the route."""
        decision = await self.adecide(state)
        if self.on_decision is not None:
            self.on_decision(decision)
        return self.routes.get(decision.choice, decision.choice)

    async def adecide(self, state: Mapping[str, Any]) -> Decision:
        """The decision for ``state``, without mapping it to a route (e.g. to store it)."""
        context = self.context
        if context is None:
            shown: Mapping[str, Any] | str = dict(state)
        elif callable(context):
            shown = context(state)
        else:
            shown = {key: state[key] for key in context if key in state}
        return await adecide(
            self.model,
            shown,
            self.choices,
            instructions=self.instructions,
            fallback=self.fallback,
        )
