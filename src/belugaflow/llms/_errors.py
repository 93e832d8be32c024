"""What can go wrong when a model is called, and whether trying again can help.

::

    BelugaflowError
    ├── ProviderError                 a provider call failed (provider, model, status_code)
    │   ├── ProviderRateLimitError    429: too many requests (retryable, honours Retry-After)
    │   ├── ProviderUnavailableError  5xx, 529 overloaded (retryable)
    │   ├── ProviderConnectionError   the provider could not be reached (retryable)
    │   │   └── ProviderTimeoutError  no answer in time (retryable)
    │   ├── ProviderResponseError     malformed answer: bad JSON, a stream cut short (retryable)
    │   └── ProviderRequestError      4xx: the request is wrong (never retried)
    │       └── ProviderAuthError     401 / 403: the key is wrong or lacks permission
    ├── InvalidOutputError            the answer does not fit the asked format
    ├── AllModelsFailedError          every model of ``with_fallbacks`` failed
    └── DecisionError                 ``decide`` found no valid decision and had no fallback

Retrying follows the project's rule: an error is retried unless its ``retryable`` is false,
after at least ``retry_after`` seconds when the provider said so.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping, Sequence

from belugaflow._errors import BelugaflowError

__all__ = [
    "AllModelsFailedError",
    "DecisionError",
    "InvalidOutputError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderRequestError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "error_for_status",
    "parse_retry_after",
]


class ProviderError(BelugaflowError):
    """A call to an LLM provider failed. The provider's own message is kept in the text.

    Args:
        message: What went wrong, in the provider's words where it gave any.
        provider: The provider's name, e.g. ``"openai"``.
        model: The model that was asked.
        status_code: The HTTP status, when the provider answered with one.
        retry_after: Seconds the provider asked to wait before trying again.
    """

    code = "llm_provider_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after
        self.attempts = 1
        """Attempts made before giving up; set by the retry loop."""

    def __str__(self) -> str:
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        tries = f"; gave up after {self.attempts} attempts" if self.attempts > 1 else ""
        never = "" if self.retryable else "; not retried: trying again cannot help"
        return f"{self.provider} model {self.model!r}{status}: {self.message}{tries}{never}"


class ProviderRateLimitError(ProviderError):
    """The provider rejected the call for going over a rate limit (HTTP 429)."""

    code = "llm_rate_limited"


class ProviderUnavailableError(ProviderError):
    """The provider failed or is overloaded (HTTP 5xx, Anthropic's 529)."""

    code = "llm_unavailable"


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or the connection broke."""

    code = "llm_connection_failed"


class ProviderTimeoutError(ProviderConnectionError):
    """The provider did not answer within the call's timeout."""

    code = "llm_timeout"


class ProviderResponseError(ProviderError):
    """The provider's answer could not be read: invalid JSON, or a stream that stopped early."""

    code = "llm_bad_response"


class ProviderRequestError(ProviderError):
    """The provider refused the request itself (HTTP 4xx): an unknown model, a prompt over the
    context window, a bad parameter. Sending it again cannot help."""

    code = "llm_bad_request"
    retryable = False


class ProviderAuthError(ProviderRequestError):
    """The API key is missing, wrong, or lacks permission (HTTP 401 / 403)."""

    code = "llm_auth_failed"


class InvalidOutputError(BelugaflowError):
    """The model answered, but not in the asked format (JSON schema, allowed choices...).

    ``output`` holds the raw answer, so it can be logged or shown in a repair prompt.
    """

    code = "llm_invalid_output"
    retryable = False

    def __init__(self, message: str, *, output: str) -> None:
        super().__init__(message)
        self.output = output


class AllModelsFailedError(BelugaflowError):
    """Every model of a ``with_fallbacks`` chain failed; ``errors`` holds each one's error."""

    code = "llm_all_failed"

    def __init__(self, errors: Sequence[tuple[str, BaseException]]) -> None:
        lines = "\n".join(f"  - {name}: {type(e).__name__}: {e}" for name, e in errors)
        super().__init__(f"all {len(errors)} models failed:\n{lines}")
        self.errors = tuple(error for _, error in errors)
        # Worth retrying later if any of them may recover.
        self.retryable = any(getattr(error, "retryable", False) for error in self.errors)


class DecisionError(BelugaflowError):
    """``decide`` got no valid decision from any model and had no fallback choice."""

    code = "llm_no_decision"
    retryable = False

    def __init__(self, problems: Sequence[str]) -> None:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"no valid decision (give decide() a fallback to avoid this):\n{lines}")
        self.problems = tuple(problems)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a response asks to wait: ``retry-after-ms``, then ``retry-after`` as seconds or
    an HTTP date. None when absent or unreadable."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    model: str,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """The error for an HTTP error status, with the wait the provider asked for.

    429 and 5xx are retryable (so are 408 and 409, as the SDKs treat them); other 4xx are not.
    An ``x-should-retry`` header, when present, overrides that, as it does in the SDKs.
    """
    kind: type[ProviderError]
    if status == 429:
        kind = ProviderRateLimitError
    elif status == 408:
        kind = ProviderTimeoutError
    elif status >= 500 or status == 409:
        kind = ProviderUnavailableError
    elif status in (401, 403):
        kind = ProviderAuthError
    else:
        kind = ProviderRequestError
    error = kind(
        message,
        provider=provider,
        model=model,
        status_code=status,
        retry_after=parse_retry_after(headers),
    )
    should_retry = (headers or {}).get("x-should-retry")
    if should_retry in ("true", "false"):
        error.retryable = should_retry == "true"
    return error
