"""The error taxonomy.

Every error belugaflow raises derives from :class:`BelugaflowError`, carries a machine-readable
``code`` and says whether retrying could help (``retryable``)::

    BelugaflowError
    ├── ConfigError                 bad or incomplete configuration (names key and file)
    │   └── MissingEnvVarError      ``${VAR}`` without a default and VAR unset
    ├── SpecError                   a chain or graph definition is invalid (lists every problem)
    ├── InputError                  a run's input or a signal does not match its schema (each field)
    ├── RunError                    a run failed; carries the graph, node and partial state
    │   ├── NodeFailedError         a node (or chain step) failed after its last attempt
    │   ├── RouteError              a router returned a route its mapping does not know
    │   ├── StateConflictError      two parallel nodes wrote one key that has no reducer
    │   ├── MaxStepsExceededError   a loop ran more node steps than ``max_steps``
    │   ├── WaitTimeoutError        a wait node got no signal in time and has no ``on_timeout``
    │   ├── RunCancelledError       the run was cancelled (its compensation ran)
    │   └── RunTimeoutError         the whole run exceeded its timeout
    ├── CallTimeoutError            one call exceeded its timeout (retryable)
    ├── CircuitOpenError            a circuit breaker rejected the call (retryable later)
    ├── BulkheadFullError           a bulkhead rejected the call (retryable)
    ├── NonRetryableError           raised by user code: fail at once, never retry
    ├── RetryableError              raised by user code: retry, optionally after ``retry_after``
    │
    │   belugaflow.llms (``llms/_errors.py``)
    ├── ProviderError               a call to an LLM provider failed (its message kept)
    │   ├── ProviderRateLimitError      HTTP 429 (retryable, honours Retry-After)
    │   ├── ProviderUnavailableError    HTTP 5xx, overloaded (retryable)
    │   ├── ProviderConnectionError     unreachable, connection broke (retryable)
    │   │   └── ProviderTimeoutError    no answer within the call's timeout
    │   ├── ProviderResponseError       an answer that cannot be read
    │   └── ProviderRequestError        the request itself was refused (HTTP 4xx)
    │       └── ProviderAuthError       missing or wrong API key (401 / 403)
    ├── InvalidOutputError          the model answered, but not in the asked format
    ├── AllModelsFailedError        every model of a fallback chain failed
    ├── DecisionError               ``decide`` got no valid decision and had no fallback
    │
    │   belugaflow.temporal (``temporal/_devserver.py``, ``_connect.py``, ``_payloads.py``)
    ├── TemporalBinaryNotFoundError the ``temporal`` CLI or test server is not installed
    ├── DevServerError              the embedded dev server did not start or died
    ├── TemporalConnectionError     the frontend is unreachable or refused TLS, certificate or key
    └── ClaimCheckError             a payload's blob could not be stored or read back
        ├── BlobMissingError        the blob a payload points to is gone
        └── BlobCorruptError        the blob does not match the payload's digest

    PayloadTooLargeError (``temporal/_payloads.py``) stands outside the tree on purpose: it is
    a Temporal ``ApplicationError``, which is what makes it fail an activity or a workflow at
    once instead of retrying a workflow task forever. It has a ``code`` and ``retryable`` like
    the rest; catch it by its own type.

Retry decisions look at any exception the same way: an error is retried unless its
``retryable`` attribute is false or its type is listed as non-retryable in the policy, and a
``retry_after`` attribute (seconds) is honoured as the server's hint. This is Temporal's
``ApplicationError`` model, so errors keep their meaning on the durable engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BelugaflowError",
    "BulkheadFullError",
    "CallTimeoutError",
    "CircuitOpenError",
    "ConfigError",
    "InputError",
    "MaxStepsExceededError",
    "MissingEnvVarError",
    "NodeFailedError",
    "NonRetryableError",
    "RetryableError",
    "RouteError",
    "RunCancelledError",
    "RunError",
    "RunTimeoutError",
    "SpecError",
    "StateConflictError",
    "WaitTimeoutError",
]


class BelugaflowError(Exception):
    """Root of every error belugaflow raises."""

    code: str = "belugaflow_error"
    """Stable, machine-readable identifier of the error kind."""
    retryable: bool = False
    """Whether trying the same thing again could succeed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(BelugaflowError):
    """The configuration is invalid; the message names the key and the file."""

    code = "config_invalid"

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        where = ", ".join(
            part for part in (f"file {file}" if file else "", f"key {key}" if key else "") if part
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.key = key
        self.file = file


class MissingEnvVarError(ConfigError):
    """A ``${VAR}`` placeholder without default was needed while VAR is unset."""

    code = "config_missing_env"

    def __init__(self, var: str, *, key: str, file: str | None = None) -> None:
        super().__init__(
            f"environment variable {var} is not set and has no default"
            f" (write ${{{var}:-default}} to give one)",
            key=key,
            file=file,
        )
        self.var = var


class SpecError(BelugaflowError):
    """A chain or graph definition is invalid. ``problems`` lists every problem found."""

    code = "spec_invalid"

    def __init__(self, subject: str, problems: list[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{subject} is invalid ({len(problems)} {noun}):\n{lines}")
        self.subject = subject
        self.problems = list(problems)


class InputError(BelugaflowError, ValueError):
    """A run's input, or a value sent to a run, does not match its published schema.
    ``problems`` names each field: ``"quantity: '2' is not of type 'integer'"``."""

    code = "input_invalid"

    def __init__(self, subject: str, problems: list[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{subject} is invalid:\n{lines}")
        self.subject = subject
        self.problems = list(problems)


class RunError(BelugaflowError):
    """A run failed. ``state`` holds the state as it was when the run stopped."""

    code = "run_failed"

    def __init__(
        self,
        message: str,
        *,
        graph: str,
        node: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.graph = graph
        self.node = node
        self.state: dict[str, Any] = dict(state) if state is not None else {}


class NodeFailedError(RunError):
    """A node or chain step failed on its last attempt; the cause is in ``__cause__``."""

    code = "node_failed"

    def __init__(
        self,
        *,
        graph: str,
        node: str,
        attempt: int,
        max_attempts: int,
        cause: BaseException,
        state: Mapping[str, Any] | None = None,
        detail: str | None = None,
    ) -> None:
        limit = "unlimited" if max_attempts == 0 else str(max_attempts)
        if detail is None:  # given for a remote error, whose stand-in has another type
            detail = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        super().__init__(
            f"{graph!r}: node {node!r} failed on attempt {attempt}/{limit} (not retrying): "
            f"{detail}",
            graph=graph,
            node=node,
            state=state,
        )
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.retryable = bool(getattr(cause, "retryable", False))
        self.__cause__ = cause


class RouteError(RunError):
    """A router returned a route that is not in its mapping."""

    code = "route_unknown"


class StateConflictError(RunError):
    """Two nodes that may run in parallel wrote the same key, and the key has no reducer."""

    code = "state_conflict"

    def __init__(
        self, *, graph: str, key: str, nodes: tuple[str, str], state: Mapping[str, Any]
    ) -> None:
        first, second = nodes
        super().__init__(
            f"{graph!r}: nodes {first!r} and {second!r} both wrote state key {key!r}, which has"
            f" no reducer; they can run in parallel, so the result would depend on timing"
            f" (give {key!r} a reducer, or write different keys)",
            graph=graph,
            node=second,
            state=state,
        )
        self.key = key
        self.nodes = nodes


class MaxStepsExceededError(RunError):
    """A loop made the run take more node steps than ``max_steps`` allows."""

    code = "max_steps_exceeded"


class WaitTimeoutError(RunError):
    """A wait node got no signal within its timeout, and has no ``on_timeout`` route."""

    code = "wait_timeout"


class RunCancelledError(RunError):
    """The run was cancelled; the compensation of the nodes that had started ran first."""

    code = "run_cancelled"


class RunTimeoutError(RunError):
    """The whole run took longer than its timeout."""

    code = "run_timeout"

    def __init__(
        self,
        *,
        graph: str,
        timeout: float,
        node: str | None,
        state: Mapping[str, Any],
        running: tuple[str, ...] = (),
    ) -> None:
        running = running or ((node,) if node else ())
        if len(running) == 1:
            where = f" while node {running[0]!r} was running"
        elif running:
            where = f" while nodes {', '.join(map(repr, running))} were running"
        else:
            where = ""
        super().__init__(
            f"{graph!r}: run exceeded its timeout of {timeout:g} s{where}",
            graph=graph,
            node=running[0] if running else None,
            state=state,
        )
        self.timeout = timeout
        self.running = running
        """The nodes that were running when the timeout hit (they were cancelled)."""


class CallTimeoutError(BelugaflowError):
    """One call (a node attempt, a chain step) took longer than its timeout."""

    code = "call_timeout"
    retryable = True

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"{what} timed out after {timeout:g} s")
        self.what = what
        self.timeout = timeout


class CircuitOpenError(BelugaflowError):
    """A circuit breaker is open and rejected the call without running it."""

    code = "circuit_open"
    retryable = True

    def __init__(self, name: str, *, reopens_in: float) -> None:
        if reopens_in > 0:
            why = f"is open; calls are rejected for {reopens_in:.2f} s more"
        else:
            why = "is half-open and its one probe call is still running; try again shortly"
        super().__init__(f"circuit breaker {name!r} {why}")
        self.name = name
        self.reopens_in = reopens_in
        self.retry_after = reopens_in


class BulkheadFullError(BelugaflowError):
    """A bulkhead is at capacity and its wait queue is full."""

    code = "bulkhead_full"
    retryable = True

    def __init__(self, name: str, *, max_concurrent: int) -> None:
        super().__init__(
            f"bulkhead {name!r} is full ({max_concurrent} calls running, no room to wait)"
        )
        self.name = name
        self.max_concurrent = max_concurrent


class NonRetryableError(BelugaflowError):
    """Raise from a node or step to fail at once, whatever the retry policy says."""

    code = "non_retryable"
    retryable = False


class RetryableError(BelugaflowError):
    """Raise from a node or step to ask for a retry, optionally after ``retry_after`` seconds."""

    code = "retryable"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
