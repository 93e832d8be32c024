"""Errors of the HTTP layer under both SDKs (httpx2), which can escape a stream unwrapped."""

from __future__ import annotations

import httpx2

from ._errors import ProviderConnectionError, ProviderError, ProviderTimeoutError

__all__ = ["transport_error"]


def transport_error(error: Exception, *, provider: str, model: str) -> ProviderError | None:
    """Our error for a connection-level failure, or None if ``error`` is not one."""
    if isinstance(error, httpx2.TimeoutException):
        return ProviderTimeoutError(
            f"no answer in time ({type(error).__name__})", provider=provider, model=model
        )
    if isinstance(error, httpx2.TransportError):
        return ProviderConnectionError(
            f"the connection failed ({type(error).__name__}: {error})",
            provider=provider,
            model=model,
        )
    return None
