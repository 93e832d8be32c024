"""Circuit breaker: stop calling a dependency that keeps failing, and probe it now and then.

::

            failure_threshold consecutive failures
            (or failure rate over the window)
    CLOSED ─────────────────────────────────────▶ OPEN
      ▲                                           │  ▲
      │ probe succeeds          recovery_timeout  │  │ probe fails
      │                         has passed        ▼  │
      └────────────────────────────────────── HALF_OPEN (one probe call admitted)
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import ParamSpec, TypedDict, TypeVar, Unpack

from belugaflow._duration import to_seconds
from belugaflow._errors import CircuitOpenError

__all__ = ["BreakerOptions", "BreakerRegistry", "CircuitBreaker", "CircuitState"]

_log = logging.getLogger("belugaflow.resilience")

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(enum.StrEnum):
    """The state of a :class:`CircuitBreaker`. The values are lowercase names, for metrics."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """Calls are rejected with :class:`~belugaflow.CircuitOpenError` until the recovery
    timeout has passed."""
    HALF_OPEN = "half_open"
    """One probe call is let through; its outcome closes or re-opens the circuit."""


_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

StateChangeHook = Callable[[str, CircuitState, CircuitState], None]


class BreakerOptions(TypedDict, total=False):
    """The keyword arguments of :class:`CircuitBreaker`, for storing and splatting."""

    failure_threshold: int
    recovery_timeout: float | timedelta
    failure_rate_threshold: float | None
    window_size: int
    minimum_calls: int
    excluded: tuple[type[BaseException], ...]
    clock: Callable[[], float]
    on_state_change: StateChangeHook | None


class CircuitBreaker:
    """Rejects calls to a failing dependency for a while, then lets one probe call test it.

    The circuit opens after ``failure_threshold`` consecutive failures or, when
    ``failure_rate_threshold`` is set, when at least ``minimum_calls`` of the last
    ``window_size`` calls are recorded and the share of failures among them reaches the
    threshold. While open, calls fail at once with
    :class:`~belugaflow.CircuitOpenError` (``reopens_in`` = seconds until a probe is allowed).
    After ``recovery_timeout`` the circuit is half-open: exactly one probe call is admitted
    and the others are rejected. The probe's success closes the circuit and clears the counts;
    its failure opens it again for another ``recovery_timeout``.

    Errors of an ``excluded`` type, and ``BaseException`` s that are not ``Exception`` s
    (cancellation above all), are not failures: they neither count nor reset the count, and a
    probe ending that way frees the probe slot for the next caller.

    Two ways to use it. High level, wrap the call: ``await breaker.call(fn, *args)`` or
    ``breaker.call_sync(fn, *args)``. Low level, as the engines do: call :meth:`before_call`,
    run the call, then report :meth:`on_success`, :meth:`on_failure` or :meth:`on_cancel`.
    In half-open state the first outcome reported decides, whichever call reports it.

    All methods are thread-safe (one :class:`threading.Lock`) and never block on I/O, so one
    breaker can be shared by event loops and threads. Breakers are shared by name through a
    :class:`BreakerRegistry`.

    Args:
        name: Names the protected dependency in errors, logs and metrics.
        failure_threshold: Consecutive failures that open the circuit. Default 5.
        recovery_timeout: How long the circuit stays open before a probe, in seconds or as a
            timedelta. Default 30 s.
        failure_rate_threshold: Failure share (0 < x <= 1) over the window that opens the
            circuit too. Default ``None``: consecutive failures only.
        window_size: How many recent outcomes the failure rate is computed over. Default 20.
        minimum_calls: Outcomes needed in the window before the rate is judged. Default 10.
        excluded: Error types that are not the dependency's fault (validation errors, 404s…).
        clock: Returns the current time in seconds. Default :func:`time.monotonic`; tests
            pass a :class:`belugaflow.testing.FakeClock`.
        on_state_change: Called as ``hook(name, old, new)`` after each transition, outside
            the lock. An exception from it is logged and otherwise ignored, so a broken monitor
            cannot wedge the breaker.

    Raises:
        ValueError: A setting is out of range; the message names it.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_lock",
        "_opened_at",
        "_probing",
        "_state",
        "_window",
        "_window_failures",
        "excluded",
        "failure_rate_threshold",
        "failure_threshold",
        "minimum_calls",
        "name",
        "on_state_change",
        "recovery_timeout",
        "window_size",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float | timedelta = 30.0,
        failure_rate_threshold: float | None = None,
        window_size: int = 20,
        minimum_calls: int = 10,
        excluded: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeHook | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if failure_rate_threshold is not None and not 0 < failure_rate_threshold <= 1:
            raise ValueError(
                f"failure_rate_threshold must be in (0, 1], got {failure_rate_threshold}"
            )
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if not 1 <= minimum_calls <= window_size:
            raise ValueError(
                f"minimum_calls must be between 1 and window_size ({window_size}),"
                f" got {minimum_calls}"
            )
        # Public for introspection; treat them as read-only.
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = to_seconds(recovery_timeout, "recovery_timeout")
        self.failure_rate_threshold = failure_rate_threshold
        self.window_size = window_size
        self.minimum_calls = minimum_calls
        self.excluded = tuple(excluded)
        self.on_state_change = on_state_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        # The window exists only in failure-rate mode, so the default mode pays nothing for it.
        self._window: collections.deque[int] | None = (
            collections.deque(maxlen=window_size) if failure_rate_threshold is not None else None
        )
        self._window_failures = 0

    # -- introspection -------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state. Reading it moves OPEN to HALF_OPEN once the timeout has passed."""
        if self._state is not _OPEN:
            return self._state
        with self._lock:
            changed = self._state is _OPEN and self._clock() >= self._reopens_at()
            if changed:
                self._half_open()
            state = self._state
        if changed:
            self._notify(_OPEN, _HALF_OPEN)
        return state

    @property
    def failure_count(self) -> int:
        """Failures counted since the circuit last closed (consecutive while closed)."""
        return self._failures

    @property
    def opened_at(self) -> float | None:
        """When the circuit last opened (clock seconds); ``None`` while closed."""
        return None if self._state is _CLOSED else self._opened_at

    def __repr__(self) -> str:
        # The raw state, without the OPEN → HALF_OPEN check: repr must not have side effects.
        return (
            f"CircuitBreaker({self.name!r}, state={self._state.value},"
            f" failures={self._failures}/{self.failure_threshold})"
        )

    # -- low-level protocol (the engines' hot path) --------------------------------------------

    def before_call(self) -> None:
        """Admit a call or reject it. Call it right before the protected call.

        Raises:
            CircuitOpenError: The circuit is open, or half-open with its probe in flight
                (``reopens_in`` is 0 then: the probe's outcome decides).
        """
        # Lock-free fast path: a call racing a concurrent trip is admitted as if it had arrived
        # a moment earlier, which is indistinguishable from the locked outcome.
        if self._state is _CLOSED:
            return
        with self._lock:
            state = self._state
            if state is _CLOSED:
                return
            if state is _OPEN:
                reopens_in = self._reopens_at() - self._clock()
                if reopens_in > 0:
                    raise CircuitOpenError(self.name, reopens_in=reopens_in)
                self._half_open()
            elif self._probing:
                raise CircuitOpenError(self.name, reopens_in=0.0)
            self._probing = True
        if state is _OPEN:
            self._notify(_OPEN, _HALF_OPEN)

    def on_success(self) -> None:
        """Report that an admitted call succeeded."""
        if self._state is _CLOSED and self._failures == 0 and self._window is None:
            return  # nothing to reset; skip the lock
        with self._lock:
            state = self._state
            if state is _CLOSED:
                self._failures = 0
                self._record(0)
                return
            if state is _OPEN:
                return  # a call admitted before the trip; only a probe may close the circuit
            self._close()
        self._notify(_HALF_OPEN, _CLOSED)

    def on_failure(self, error: BaseException) -> None:
        """Report that an admitted call raised ``error``.

        Excluded errors and non-``Exception`` s (cancellation, KeyboardInterrupt…) are handed
        to :meth:`on_cancel` instead of being counted.
        """
        if not isinstance(error, Exception) or isinstance(error, self.excluded):
            self.on_cancel()
            return
        with self._lock:
            state = self._state
            if state is _OPEN:
                return  # already open; do not push the probe further away
            self._failures += 1
            if state is _CLOSED:
                self._record(1)
                if not self._should_trip():
                    return
            self._open()
        self._notify(state, _OPEN)

    def on_cancel(self) -> None:
        """Report that an admitted call ended without an outcome (cancelled, or an excluded error).

        Nothing is counted; in half-open state the probe slot is freed for the next caller.
        """
        if self._state is not _HALF_OPEN:
            return
        with self._lock:
            if self._state is _HALF_OPEN:
                self._probing = False

    # -- high-level wrappers -------------------------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: The call was rejected; ``fn`` did not run.
        """
        self.before_call()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self.on_failure(error)
            raise
        self.on_success()
        return result

    def call_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: The call was rejected; ``fn`` did not run.
        """
        self.before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            self.on_failure(error)
            raise
        self.on_success()
        return result

    # -- internals (the caller holds the lock) -------------------------------------------------

    def _reopens_at(self) -> float:
        return self._opened_at + self.recovery_timeout

    def _record(self, failed: int) -> None:
        window = self._window
        if window is None:
            return
        if len(window) == window.maxlen:
            self._window_failures -= window[0]  # about to be pushed out
        window.append(failed)
        self._window_failures += failed

    def _should_trip(self) -> bool:
        if self._failures >= self.failure_threshold:
            return True
        window, threshold = self._window, self.failure_rate_threshold
        if window is None or threshold is None or len(window) < self.minimum_calls:
            return False
        # Divide rather than multiply: 3 / 10 >= 0.3 holds, 3 >= 0.3 * 10 does not (rounding).
        return self._window_failures / len(window) >= threshold

    def _open(self) -> None:
        self._state = _OPEN
        self._opened_at = self._clock()
        self._probing = False
        self._clear_window()

    def _half_open(self) -> None:
        self._state = _HALF_OPEN
        self._probing = False

    def _close(self) -> None:
        self._state = _CLOSED
        self._failures = 0
        self._probing = False
        self._clear_window()

    def _clear_window(self) -> None:
        if self._window is not None:
            self._window.clear()
            self._window_failures = 0

    def _notify(self, old: CircuitState, new: CircuitState) -> None:
        hook = self.on_state_change
        if hook is None:
            return
        try:
            hook(self.name, old, new)
        except Exception:
            _log.exception(
                "on_state_change hook of circuit breaker %r failed (%s -> %s)", self.name, old, new
            )

    def _settings(self) -> dict[str, object]:
        """The settings that decide behaviour, to compare breakers registered under one name."""
        return {
            "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout,
            "failure_rate_threshold": self.failure_rate_threshold,
            "window_size": self.window_size,
            "minimum_calls": self.minimum_calls,
            "excluded": self.excluded,
        }


class BreakerRegistry:
    """Circuit breakers shared by name, so every caller of one dependency trips the same one.

    The orchestrator owns one registry; there is deliberately no global default. Thread-safe.
    """

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CircuitBreaker | None:
        """Return the breaker registered as ``name``, or ``None``."""
        return self._breakers.get(name)

    def register(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Register ``breaker`` under its name and return it. Registering it again is a no-op.

        Raises:
            ValueError: Another breaker is already registered under that name.
        """
        with self._lock:
            existing = self._breakers.setdefault(breaker.name, breaker)
        if existing is not breaker:
            raise ValueError(
                f"a different circuit breaker is already registered as {breaker.name!r}"
                f" ({existing!r}); reuse it with registry.get({breaker.name!r})"
            )
        return breaker

    def get_or_create(self, name: str, **config: Unpack[BreakerOptions]) -> CircuitBreaker:
        """Return the breaker registered as ``name``, creating it from ``config`` if missing.

        Call it once at set-up and keep the breaker: with ``config`` given, finding an existing
        breaker builds a throwaway one to compare settings.

        Raises:
            ValueError: The breaker exists with different settings than ``config`` gives
                (``clock`` and ``on_state_change`` are not compared), or ``config`` is invalid.
        """
        existing = self._breakers.get(name)
        if existing is None:
            created = CircuitBreaker(name, **config)
            with self._lock:
                existing = self._breakers.setdefault(name, created)
            if existing is created:
                return created
        if config:
            wanted, actual = CircuitBreaker(name, **config)._settings(), existing._settings()
            differing = [f"{key}={actual[key]!r}" for key in wanted if wanted[key] != actual[key]]
            if differing:
                raise ValueError(
                    f"circuit breaker {name!r} already exists with other settings"
                    f" ({', '.join(differing)}); give the same settings or use another name"
                )
        return existing

    def __iter__(self) -> Iterator[CircuitBreaker]:
        """Iterate over the registered breakers, in registration order."""
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers
