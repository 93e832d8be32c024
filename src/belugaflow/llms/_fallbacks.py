"""``with_fallbacks``: ask the next model when one fails."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence

from ._errors import AllModelsFailedError
from ._messages import AIMessage, AIMessageChunk
from ._model import ChatModel, ChatRequest

__all__ = ["FallbackModel"]

_log = logging.getLogger("belugaflow.llms")


class FallbackModel(ChatModel):
    """Asks its models in order until one answers. Made by :meth:`ChatModel.with_fallbacks`.

    Each model applies its own retries and circuit breaker first, so a fallback is used only
    once the model before it has given up (or its breaker is open). A stream falls back only
    before its first chunk. ``provider`` and ``model`` name the primary; every answer names the
    model that actually gave it.

    Raises:
        ValueError: Fewer than two models were given.
        TypeError: An item is not a :class:`ChatModel`.
    """

    def __init__(self, models: Sequence[ChatModel]) -> None:
        flat: list[ChatModel] = []
        for index, model in enumerate(models):
            if not isinstance(model, ChatModel):
                raise TypeError(f"with_fallbacks(): model {index} is not a ChatModel: {model!r}")
            flat += model._candidates()  # nested chains become one flat chain
        if len(flat) < 2:
            raise ValueError("with_fallbacks() needs at least one fallback model")
        super().__init__(provider=flat[0].provider, model=flat[0].model)
        self.models = tuple(flat)

    def __repr__(self) -> str:
        return f"<FallbackModel {' -> '.join(model.label for model in self.models)}>"

    def _candidates(self) -> tuple[ChatModel, ...]:
        return self.models

    async def _generate(self, request: ChatRequest) -> AIMessage:
        errors: list[tuple[str, Exception]] = []
        for model in self.models:
            try:
                return await model._generate(request)
            except Exception as error:
                _log.info("%s failed (%s); trying the next model", model.label, error)
                errors.append((model.label, error))
        raise AllModelsFailedError(errors) from errors[-1][1]

    async def _stream(self, request: ChatRequest) -> AsyncGenerator[AIMessageChunk, None]:
        errors: list[tuple[str, Exception]] = []
        for model in self.models:
            stream = model._stream(request)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                return
            except Exception as error:
                await stream.aclose()
                _log.info("%s failed (%s); trying the next model", model.label, error)
                errors.append((model.label, error))
                continue
            try:
                yield first
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()
            return
        raise AllModelsFailedError(errors) from errors[-1][1]

    async def aclose(self) -> None:
        for model in self.models:
            await model.aclose()
