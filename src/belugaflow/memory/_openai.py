"""``OpenAIEmbedder``: embeddings from OpenAI, or from any server that speaks its embeddings API
(llama.cpp, Ollama, vLLM, LM Studio...) through ``base_url``.

Calls go through the official SDK with its own retries off; ours retry them (``retry=``) as
they do chat calls, and failures become the LLM providers' errors
(:class:`~belugaflow.llms.ProviderRateLimitError` for a 429, and so on) by the same mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from belugaflow._errors import InputError, NodeFailedError
from belugaflow._execute import StepCall, arun_step
from belugaflow._runnable import CallKind
from belugaflow.config import Secret
from belugaflow.llms._errors import ProviderError, ProviderResponseError
from belugaflow.llms._provider import DEFAULT_RETRY, LoopClients, api_key_for
from belugaflow.resilience import RetryPolicy

from ._contract import DimensionError, Vectors
from ._embedding import checked_texts, no_vectors, unit_rows

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIEmbedder"]

_WIDTHS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""Dimensions of OpenAI's models; any other model must be given ``dimension=``."""
_SHORTENED = ("text-embedding-3-",)
"""Models whose vectors the API can shorten (its ``dimensions`` parameter)."""


class OpenAIEmbedder:
    """Unit vectors from an OpenAI-compatible embeddings API.

    Args:
        model: The model, e.g. ``"text-embedding-3-small"`` (the embedder's ``name`` too).
        base_url: The server, e.g. ``"http://127.0.0.1:11434/v1"`` for Ollama.
        api_key: The API key (a str or :class:`~belugaflow.config.Secret`). Default: the
            ``OPENAI_API_KEY`` environment variable; not needed with a ``base_url``.
        dimension: Width of the vectors. Default: the model's own for OpenAI's models;
            required for any other. For ``text-embedding-3-*`` a smaller width is asked of the
            API, which shortens the vectors itself.
        batch_size: Texts per request. Default 256 (the API takes up to 2048 and 300,000 tokens).
        timeout: Seconds one request may take (float or timedelta). Default 60 s; None: no
            limit.
        retry: Retry policy of one request. Default: 3 attempts, as for chat calls;
            ``RetryPolicy.none()`` turns retries off.

    Raises:
        ImportError: The openai SDK is not installed.
        ValueError: No dimension for a model whose width is unknown; no API key and no
            ``base_url``; ``batch_size`` below 1 or ``timeout`` not above 0.
    """

    dimension: int
    name: str

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        dimension: int | None = None,
        batch_size: int = 256,
        timeout: float | timedelta | None = 60.0,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        try:
            import openai  # noqa: F401  (checked here so the error says what to do)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "OpenAIEmbedder needs the openai SDK; install it with:"
                " pip install 'belugaflow[llm]'"
            ) from exc
        where = f"OpenAIEmbedder({model!r})"
        native = _WIDTHS.get(model)
        width = dimension if dimension is not None else native
        if width is None:
            raise ValueError(f"{where}: the width of its vectors is unknown; pass dimension=")
        for option, value in (("dimension", width), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {option} must be an integer >= 1, got {value!r}")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if seconds is not None and not seconds > 0:
            raise ValueError(f"{where}: timeout must be > 0 seconds or None, got {timeout!r}")
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"{where}: retry must be a RetryPolicy, got {retry!r}")
        self.name = model
        self.dimension = width
        self.model = model
        self.base_url = base_url
        self.batch_size = batch_size
        self.timeout = seconds
        self.retry = retry
        self._shorten = width != native and model.startswith(_SHORTENED)
        self._api_key = api_key_for("openai", api_key, base_url=base_url, env_var="OPENAI_API_KEY")
        self._clients: LoopClients[openai.AsyncOpenAI] = LoopClients(self._new_client, _close)

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"OpenAIEmbedder({self.model!r}, dimension={self.dimension}{where})"

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts``, shape ``(len(texts), dimension)``, in the same order.

        Raises:
            InputError: ``texts`` is not a list of str, or one is empty (the API refuses those).
            DimensionError: The server's vectors are not ``dimension`` wide.
            ProviderError: The call failed (its subclass says how), after the retries.
        """
        where = f"the texts given to {self!r}"
        batch = checked_texts(texts, where)
        empty = [f"texts[{index}] is empty" for index, text in enumerate(batch) if not text.strip()]
        if empty:
            raise InputError(where, empty)
        if not batch:
            return no_vectors(self.dimension)
        parts = [
            await self._request(batch[start : start + self.batch_size])
            for start in range(0, len(batch), self.batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def aclose(self) -> None:
        """Close the running loop's HTTP client (a loop's client also closes with the loop)."""
        await self._clients.aclose()

    # -- one request ---------------------------------------------------------------------------

    async def _request(self, texts: list[str]) -> Vectors:
        """One request under the retry policy; re-raise the last error itself."""
        attempts = 0

        async def attempt(batch: list[str]) -> Vectors:
            nonlocal attempts
            attempts += 1
            return await self._attempt(batch)

        label = f"openai embeddings {self.model}"
        step = StepCall(label, label, attempt, CallKind.ASYNC, self.retry, None, None, False)
        try:
            vectors: Vectors = await arun_step(step, texts, None)
            return vectors
        except NodeFailedError as failed:
            error = failed.__cause__ or failed
        if isinstance(error, ProviderError):
            error.attempts = attempts
        raise error

    async def _attempt(self, texts: list[str]) -> Vectors:
        client = await self._clients.get()
        extra: dict[str, Any] = {"dimensions": self.dimension} if self._shorten else {}
        try:
            answer = await client.embeddings.create(model=self.model, input=texts, **extra)
        except Exception as error:
            from belugaflow.llms._openai import sdk_error

            raise sdk_error(
                error, provider="openai", model=self.model, timeout=self.timeout
            ) from error
        rows = sorted(answer.data, key=lambda row: row.index)
        if [row.index for row in rows] != list(range(len(texts))):
            raise self._bad(f"asked for {len(texts)} embeddings, got indexes {_indexes(rows)}")
        for row in rows:
            if len(row.embedding) != self.dimension:
                raise DimensionError(
                    f"the embeddings of {self!r}",
                    expected=self.dimension,
                    got=len(row.embedding),
                )
        try:
            return unit_rows(np.asarray([row.embedding for row in rows], dtype=np.float32))
        except ValueError as error:
            raise self._bad(f"unusable vectors: {error}") from error

    def _bad(self, message: str) -> ProviderResponseError:
        return ProviderResponseError(message, provider="openai", model=self.model)

    def _new_client(self) -> openai.AsyncOpenAI:
        import openai

        return openai.AsyncOpenAI(
            api_key=self._api_key.get_secret_value(),
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # our RetryPolicy makes the attempts; the SDK's would multiply them
        )


async def _close(client: openai.AsyncOpenAI) -> None:
    await client.close()


def _indexes(rows: Sequence[Any]) -> str:
    shown = [row.index for row in rows[:10]]
    return f"{shown}{'...' if len(rows) > 10 else ''}"
