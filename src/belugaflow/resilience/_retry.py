"""Retry policy: whether a failed call is retried, and how long to wait before the next attempt.

The engines own the retry loop; this module only answers their two questions
(:meth:`RetryPolicy.next_delay`) and says whether to skip the sleep in tests
(:func:`backoff_disabled`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, TypedDict, Unpack

from belugaflow._defaults import DEFAULTS
from belugaflow._duration import to_seconds

if TYPE_CHECKING:
    import temporalio.common

__all__ = ["RetryOptions", "RetryPolicy", "backoff_disabled"]

# One generator for all jitter; tests pass their own to next_delay(rng=...).
_rng = random.Random()

_DEFAULT_JITTER = 0.1

# Checked by the engines before every backoff sleep, so it stays a plain module global.
_backoff_disabled = False


def backoff_disabled() -> bool:
    """Return whether retry sleeps should be skipped (testing mode).

    Engines call this before sleeping between attempts. Turn it on with
    :func:`belugaflow.testing.set_testing` or :func:`belugaflow.testing.no_backoff`.
    """
    return _backoff_disabled


def _set_backoff_disabled(on: bool) -> bool:
    """Switch testing mode; return the previous setting. Used by :mod:`belugaflow.testing`."""
    global _backoff_disabled
    previous = _backoff_disabled
    _backoff_disabled = on
    return previous


class RetryOptions(TypedDict, total=False):
    """The keyword arguments of :class:`RetryPolicy` other than ``max_attempts``.

    Used by :meth:`RetryPolicy.from_max_retries`; handy for storing a policy's settings and
    splatting them later.
    """

    initial_interval: timedelta | float
    backoff_coefficient: float
    max_interval: timedelta | float | None
    jitter: float
    non_retryable: tuple[type[BaseException], ...]
    non_retryable_names: tuple[str, ...]
    max_elapsed: timedelta | float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to retry a failed call and how long to wait first. Temporal's semantics.

    Everything is retried except:

    * errors whose ``retryable`` attribute is ``False`` (:class:`~belugaflow.NonRetryableError`,
      or any error that says so),
    * errors that are instances of a type in :attr:`non_retryable`, or whose type name is in
      :attr:`non_retryable_names`,
    * ``BaseException`` s that are not ``Exception`` s: :class:`asyncio.CancelledError`,
      :class:`KeyboardInterrupt`, :class:`SystemExit`, :class:`GeneratorExit`.

    Retries stop after :attr:`max_attempts` attempts, or when the next sleep would end later
    than :attr:`max_elapsed` after the first attempt started. The engine then re-raises the last
    error.

    The delay after attempt ``n`` (1-based) failed is::

        base  = min(initial_interval * backoff_coefficient ** (n - 1), max_interval)
        delay = base * (1 + jitter * uniform(-1, 1))
        delay = max(delay, error.retry_after)   # only if the error carries a retry_after

    So with the defaults the sleeps are about 1 s, 2 s, 4 s, … up to 100 s, each ±10 %.
    Jitter can take a delay up to ``jitter`` × ``max_interval`` above ``max_interval``.
    A ``retry_after`` hint (float seconds or timedelta, e.g. from a 429 response's Retry-After
    header, or :class:`~belugaflow.RetryableError`) is a floor: it is honoured even above
    ``max_interval``, because retrying sooner than the server asked only earns another
    rejection. Only :attr:`max_elapsed` caps it: a hint that would overrun the time budget ends
    the retries.

    The policy converts 1:1 to and from :class:`temporalio.common.RetryPolicy`
    (:meth:`to_temporal`, :meth:`from_temporal`), except for the two local-only fields:
    :attr:`jitter` (Temporal has no jitter setting) and :attr:`max_elapsed` (Temporal bounds
    total time with the activity's ``schedule_to_close_timeout`` instead).

    Durations accept float seconds as well as :class:`~datetime.timedelta` and are stored as
    timedelta.
    """

    max_attempts: int = DEFAULTS.max_retries + 1
    """Total attempts, including the first. Default 4 (the default of every node and step);
    0 means unlimited (as in Temporal)."""
    initial_interval: timedelta = timedelta(seconds=1)
    """Delay before the first retry. Default 1 s."""
    backoff_coefficient: float = 2.0
    """Each delay is the previous one times this (>= 1). Default 2.0."""
    max_interval: timedelta | None = None
    """Upper bound of the computed delay. Default ``None``: 100 × :attr:`initial_interval`,
    as in Temporal."""
    jitter: float = _DEFAULT_JITTER
    """Random spread of each delay, as a fraction (0.1 = ±10 %), between 0 and 1. Default 0.1.
    Applied by the local engine only: Temporal has no jitter setting."""
    non_retryable: tuple[type[BaseException], ...] = ()
    """Error types (and their subclasses) that fail at once, on top of errors marked
    ``retryable = False``. Default none."""
    non_retryable_names: tuple[str, ...] = ()
    """Error type names that fail at once, matched against ``type(error).__name__`` exactly
    (no subclasses), as Temporal's ``non_retryable_error_types`` is. Filled by
    :meth:`from_temporal`; default none."""
    max_elapsed: timedelta | None = None
    """Stop retrying once the next attempt would start later than this after the first one
    started. Default ``None``: no time limit. Local only: Temporal has no such field; set the
    activity's ``schedule_to_close_timeout`` there."""

    default: ClassVar[RetryPolicy]
    """The default policy: 4 attempts, 1 s, 2 s and 4 s apart, ±10 % jitter."""

    if TYPE_CHECKING:
        # The generated __init__ would demand timedelta; this tells type checkers that float
        # seconds are accepted too (__post_init__ converts them).
        def __init__(
            self,
            *,
            max_attempts: int = ...,
            initial_interval: timedelta | float = ...,
            backoff_coefficient: float = ...,
            max_interval: timedelta | float | None = ...,
            jitter: float = ...,
            non_retryable: Iterable[type[BaseException]] = ...,
            non_retryable_names: Iterable[str] = ...,
            max_elapsed: timedelta | float | None = ...,
        ) -> None: ...

    def __post_init__(self) -> None:
        normalize = object.__setattr__
        normalize(
            self, "initial_interval", _positive_timedelta(self.initial_interval, "initial_interval")
        )
        if self.max_interval is not None:
            normalize(self, "max_interval", _positive_timedelta(self.max_interval, "max_interval"))
        if self.max_elapsed is not None:
            normalize(self, "max_elapsed", _positive_timedelta(self.max_elapsed, "max_elapsed"))
        # Tuples keep the policy hashable even when lists were passed.
        normalize(self, "non_retryable", tuple(self.non_retryable))
        normalize(self, "non_retryable_names", tuple(self.non_retryable_names))

        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0 (0 = unlimited), got {self.max_attempts}")
        # Comparisons are written so that NaN fails them.
        if not self.backoff_coefficient >= 1:
            raise ValueError(f"backoff_coefficient must be >= 1, got {self.backoff_coefficient}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")
        if self.max_interval is not None and self.max_interval < self.initial_interval:
            raise ValueError(
                f"max_interval must be >= initial_interval ({self.initial_interval}),"
                f" got {self.max_interval}"
            )
        for error_type in self.non_retryable:
            if not (isinstance(error_type, type) and issubclass(error_type, BaseException)):
                raise TypeError(f"non_retryable must hold exception types, got {error_type!r}")
        for name in self.non_retryable_names:
            if not isinstance(name, str):
                raise TypeError(f"non_retryable_names must hold str, got {name!r}")

    @staticmethod
    def none() -> RetryPolicy:
        """Return the policy that never retries (``max_attempts=1``)."""
        return _NO_RETRY

    @classmethod
    def from_max_retries(cls, max_retries: int, **options: Unpack[RetryOptions]) -> RetryPolicy:
        """Build a policy from a retry count, as configuration files state it.

        Args:
            max_retries: Retries after the first attempt; ``max_attempts`` becomes
                ``max_retries + 1``.
            **options: Any other :class:`RetryPolicy` field.

        Raises:
            ValueError: ``max_retries`` is negative.
        """
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        return cls(max_attempts=max_retries + 1, **options)

    def is_retryable(self, error: BaseException) -> bool:
        """Return whether ``error`` may be retried under this policy (ignoring attempt counts)."""
        if not isinstance(error, Exception):
            # Cancellation and interpreter shutdown must propagate, never be retried.
            return False
        if getattr(error, "retryable", True) is False:
            return False
        if self.non_retryable and isinstance(error, self.non_retryable):
            return False
        return type(error).__name__ not in self.non_retryable_names

    def next_delay(
        self,
        attempt: int,
        error: BaseException,
        elapsed: float = 0.0,
        *,
        rng: random.Random | None = None,
    ) -> float | None:
        """Return how long to sleep before the next attempt, or ``None`` to stop retrying.

        The formula is in the class docstring.

        Args:
            attempt: The number of the attempt that just failed, starting at 1.
            error: What it raised. Its ``retryable`` and ``retry_after`` attributes are used
                when present; a ``retry_after`` that is not a number or timedelta is ignored.
            elapsed: Seconds since the first attempt started; checked against
                :attr:`max_elapsed`.
            rng: Source of jitter; tests pass a seeded :class:`random.Random`.

        Returns:
            The delay in seconds, or ``None`` when the error is not retryable, the attempts are
            used up, or the delay would end past :attr:`max_elapsed`.

        Raises:
            ValueError: ``attempt`` is less than 1.
        """
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        if self.max_attempts and attempt >= self.max_attempts:
            return None
        if not self.is_retryable(error):
            return None

        initial = self.initial_interval.total_seconds()
        cap = self.max_interval.total_seconds() if self.max_interval is not None else initial * 100
        try:
            delay = min(initial * self.backoff_coefficient ** (attempt - 1), cap)
        except OverflowError:  # unlimited attempts: the power leaves float range around n = 1000
            delay = cap
        if self.jitter:
            delay *= 1.0 + self.jitter * (rng or _rng).uniform(-1.0, 1.0)

        hint = getattr(error, "retry_after", None)
        if isinstance(hint, timedelta):
            hint = hint.total_seconds()
        if isinstance(hint, int | float) and not isinstance(hint, bool) and hint > delay:
            delay = float(hint)

        if self.max_elapsed is not None and elapsed + delay > self.max_elapsed.total_seconds():
            return None
        return delay

    def to_temporal(self) -> temporalio.common.RetryPolicy:
        """Return the equivalent :class:`temporalio.common.RetryPolicy`.

        ``non_retryable_error_types`` gets the names of :attr:`non_retryable` types, then
        :attr:`non_retryable_names`, then always ``"NonRetryableError"``. Temporal matches these
        names exactly, so subclasses of a listed type *are* retried there: list them too, or have
        them set ``retryable = False``. :attr:`jitter` and :attr:`max_elapsed` have no Temporal
        counterpart and are dropped (see the class docstring).

        Raises:
            ImportError: temporalio is not installed.
        """
        try:
            from temporalio.common import RetryPolicy as TemporalRetryPolicy
        except ImportError as exc:
            raise ImportError(
                "RetryPolicy.to_temporal() needs temporalio;"
                " install it with: pip install 'belugaflow[temporal]'"
            ) from exc
        names = [error_type.__name__ for error_type in self.non_retryable]
        names += [*self.non_retryable_names, "NonRetryableError"]
        return TemporalRetryPolicy(
            initial_interval=self.initial_interval,
            backoff_coefficient=self.backoff_coefficient,
            maximum_interval=self.max_interval,
            maximum_attempts=self.max_attempts,
            non_retryable_error_types=list(dict.fromkeys(names)),  # dedupe, keep order
        )

    @classmethod
    def from_temporal(
        cls,
        policy: temporalio.common.RetryPolicy,
        *,
        jitter: float = _DEFAULT_JITTER,
        max_elapsed: timedelta | float | None = None,
    ) -> RetryPolicy:
        """Build a policy from a :class:`temporalio.common.RetryPolicy`.

        Error types cannot be recovered from their names, so ``non_retryable_error_types`` land
        in :attr:`non_retryable_names` (minus ``"NonRetryableError"``, which every policy treats
        as non-retryable anyway). ``RetryPolicy.from_temporal(p.to_temporal()) == p`` holds when
        ``p.non_retryable`` is empty.

        Args:
            policy: The Temporal policy.
            jitter: Local-only setting; see :attr:`jitter`.
            max_elapsed: Local-only setting; see :attr:`max_elapsed`.

        Raises:
            ValueError: The Temporal policy has values this class rejects (e.g. a zero interval).
        """
        names = tuple(
            name for name in policy.non_retryable_error_types or () if name != "NonRetryableError"
        )
        return cls(
            max_attempts=policy.maximum_attempts,
            initial_interval=policy.initial_interval,
            backoff_coefficient=policy.backoff_coefficient,
            max_interval=policy.maximum_interval,
            jitter=jitter,
            non_retryable_names=names,
            max_elapsed=max_elapsed,
        )


def _positive_timedelta(value: timedelta | float, name: str) -> timedelta:
    seconds = to_seconds(value, name)  # validates both forms
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


RetryPolicy.default = RetryPolicy()
_NO_RETRY = RetryPolicy(max_attempts=1)
