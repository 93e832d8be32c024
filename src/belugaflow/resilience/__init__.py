"""Resilience: retry policy, circuit breaker, bulkhead and timeouts.

One implementation, used by the local engine, by activities and by LLM providers. The pieces
are small and synchronous where they can be, because they sit on every node attempt.
"""

from belugaflow._public import show_public_paths as _show_public_paths
from belugaflow.resilience._breaker import (
    BreakerOptions,
    BreakerRegistry,
    CircuitBreaker,
    CircuitState,
)
from belugaflow.resilience._bulkhead import Bulkhead
from belugaflow.resilience._retry import RetryOptions, RetryPolicy, backoff_disabled
from belugaflow.resilience._timeout import Deadline, timeout_after

__all__ = [
    "BreakerOptions",
    "BreakerRegistry",
    "Bulkhead",
    "CircuitBreaker",
    "CircuitState",
    "Deadline",
    "RetryOptions",
    "RetryPolicy",
    "backoff_disabled",
    "timeout_after",
]

_show_public_paths(globals())
