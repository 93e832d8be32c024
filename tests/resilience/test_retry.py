"""RetryPolicy: validation, retry decisions and backoff delays."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from belugaflow._errors import (
    CallTimeoutError,
    ConfigError,
    NonRetryableError,
    RetryableError,
)
from belugaflow.resilience import RetryPolicy

NO_JITTER = RetryPolicy(jitter=0.0, max_attempts=0)


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


class FatalChild(Fatal):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: float | timedelta | None) -> None:
        super().__init__("429")
        self.retry_after = retry_after


def test_defaults_match_temporal() -> None:
    """The defaults are 4 attempts (every node's default), 1 s initial, coefficient 2, ±10 %
    jitter, no caps."""
    policy = RetryPolicy()
    assert policy.max_attempts == 4
    assert policy.initial_interval == timedelta(seconds=1)
    assert policy.backoff_coefficient == 2.0
    assert policy.max_interval is None
    assert policy.jitter == 0.1
    assert policy.max_elapsed is None
    assert RetryPolicy.default == policy


def test_float_seconds_are_normalized_to_timedelta() -> None:
    """Float seconds for duration fields are stored as timedelta and compare equal."""
    policy = RetryPolicy(initial_interval=0.5, max_interval=2, max_elapsed=10.0)
    assert policy.initial_interval == timedelta(milliseconds=500)
    assert policy.max_interval == timedelta(seconds=2)
    assert policy.max_elapsed == timedelta(seconds=10)
    assert policy == RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        max_interval=timedelta(seconds=2),
        max_elapsed=timedelta(seconds=10),
    )


def test_lists_are_normalized_to_tuples_so_policies_hash() -> None:
    """Lists given for the error fields become tuples, keeping the policy hashable."""
    policy = RetryPolicy(non_retryable=[Fatal], non_retryable_names=["Boom"])
    assert policy.non_retryable == (Fatal,)
    assert policy.non_retryable_names == ("Boom",)
    assert hash(policy) == hash(RetryPolicy(non_retryable=(Fatal,), non_retryable_names=("Boom",)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": -1}, "max_attempts"),
        ({"initial_interval": 0}, "initial_interval"),
        ({"initial_interval": timedelta(seconds=-1)}, "initial_interval"),
        ({"max_interval": 0.0}, "max_interval"),
        ({"max_elapsed": -5}, "max_elapsed"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"backoff_coefficient": float("nan")}, "backoff_coefficient"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"initial_interval": 5, "max_interval": 1}, "max_interval"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    """Out-of-range settings raise ValueError whose message names the field."""
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 1.5},
        {"initial_interval": "1s"},
        {"non_retryable": (Fatal, "Fatal")},
        {"non_retryable_names": (Fatal,)},
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict[str, object]) -> None:
    """Values of the wrong type raise TypeError instead of failing later."""
    with pytest.raises(TypeError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_none_never_retries() -> None:
    """RetryPolicy.none() allows a single attempt."""
    assert RetryPolicy.none().max_attempts == 1
    assert RetryPolicy.none().next_delay(1, Flaky()) is None


def test_from_max_retries_adds_the_first_attempt() -> None:
    """A configured max_retries of n means n + 1 attempts; other options pass through."""
    policy = RetryPolicy.from_max_retries(3, initial_interval=0.2, jitter=0.0)
    assert policy == RetryPolicy(max_attempts=4, initial_interval=0.2, jitter=0.0)
    assert RetryPolicy.from_max_retries(0).max_attempts == 1
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy.from_max_retries(-1)


def test_backoff_sequence_without_jitter() -> None:
    """Without jitter the delays are exactly initial × coefficient^(n-1)."""
    policy = RetryPolicy(initial_interval=0.5, backoff_coefficient=3.0, jitter=0, max_attempts=0)
    delays = [policy.next_delay(n, Flaky()) for n in range(1, 6)]
    assert delays == [0.5, 1.5, 4.5, 13.5, 40.5]


def test_default_max_interval_is_100_times_initial() -> None:
    """With max_interval unset, delays are capped at 100 × initial_interval, as in Temporal."""
    delays = [NO_JITTER.next_delay(n, Flaky()) for n in range(1, 10)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 100, 100]


def test_max_interval_caps_the_delay() -> None:
    """An explicit max_interval caps every computed delay."""
    policy = RetryPolicy(max_interval=5, jitter=0, max_attempts=0)
    assert [policy.next_delay(n, Flaky()) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """With unlimited attempts, attempt 5000 still gets the capped delay instead of crashing."""
    assert NO_JITTER.next_delay(5000, Flaky()) == 100


@given(
    attempt=st.integers(min_value=1, max_value=40),
    jitter=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_jitter_stays_within_its_fraction(attempt: int, jitter: float, seed: int) -> None:
    """A jittered delay is always within ±jitter of the un-jittered one."""
    policy = RetryPolicy(max_attempts=0, jitter=jitter, max_interval=30)
    base = min(2.0 ** (attempt - 1), 30.0)
    delay = policy.next_delay(attempt, Flaky(), rng=random.Random(seed))
    assert delay is not None
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


def test_jitter_actually_varies_the_delay() -> None:
    """Jitter spreads delays rather than returning the base value every time."""
    rng = random.Random(7)
    delays = {RetryPolicy(jitter=0.5).next_delay(1, Flaky(), rng=rng) for _ in range(20)}
    assert len(delays) == 20


@pytest.mark.parametrize("hint", [30.0, 30, timedelta(seconds=30)])
def test_retry_after_is_a_floor_even_above_max_interval(hint: float | timedelta) -> None:
    """A retry_after hint longer than the backoff (and than max_interval) is honoured."""
    policy = RetryPolicy(max_interval=10, max_attempts=0)
    assert policy.next_delay(1, RateLimited(hint)) == 30.0


def test_retry_after_below_backoff_keeps_the_backoff() -> None:
    """A retry_after hint shorter than the computed delay does not shorten it."""
    assert NO_JITTER.next_delay(4, RateLimited(0.5)) == 8.0
    assert NO_JITTER.next_delay(4, RateLimited(None)) == 8.0


def test_retry_after_of_belugaflow_errors_is_honoured() -> None:
    """RetryableError(retry_after=...) sets the delay floor."""
    assert NO_JITTER.next_delay(1, RetryableError("busy", retry_after=7)) == 7.0


def test_retry_after_of_an_unknown_type_is_ignored() -> None:
    """A retry_after that is not a number or timedelta does not break the retry."""
    assert NO_JITTER.next_delay(1, RateLimited("soon")) == 1.0  # type: ignore[arg-type]


def test_non_retryable_by_type_includes_subclasses() -> None:
    """Instances of a listed type, subclasses included, are not retried."""
    policy = RetryPolicy(non_retryable=(Fatal,))
    assert not policy.is_retryable(Fatal())
    assert not policy.is_retryable(FatalChild())
    assert policy.is_retryable(Flaky())
    assert policy.next_delay(1, FatalChild()) is None


def test_non_retryable_by_attribute() -> None:
    """Errors whose retryable attribute is False are never retried, whatever the policy."""
    assert not RetryPolicy().is_retryable(NonRetryableError("bad input"))
    assert not RetryPolicy().is_retryable(ConfigError("bad config"))
    err = Flaky()
    err.retryable = False  # type: ignore[attr-defined]
    assert not RetryPolicy().is_retryable(err)
    assert RetryPolicy().is_retryable(CallTimeoutError("node 'x'", 1.0))


def test_non_retryable_by_exact_name() -> None:
    """Type names in non_retryable_names match exactly, without subclasses, as in Temporal."""
    policy = RetryPolicy(non_retryable_names=("Fatal",))
    assert not policy.is_retryable(Fatal())
    assert policy.is_retryable(FatalChild())


@pytest.mark.parametrize(
    "error",
    [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), GeneratorExit()],
)
def test_base_exceptions_are_never_retried(error: BaseException) -> None:
    """Cancellation and interpreter-exit exceptions are never retried."""
    assert not RetryPolicy(max_attempts=0).is_retryable(error)
    assert RetryPolicy(max_attempts=0).next_delay(1, error) is None


def test_attempts_exhausted() -> None:
    """After max_attempts attempts there is no further delay."""
    policy = RetryPolicy(max_attempts=3, jitter=0)
    assert policy.next_delay(1, Flaky()) == 1.0
    assert policy.next_delay(2, Flaky()) == 2.0
    assert policy.next_delay(3, Flaky()) is None


def test_unlimited_attempts() -> None:
    """max_attempts=0 keeps retrying however many attempts have failed."""
    assert NO_JITTER.next_delay(10_000, Flaky()) == 100.0


def test_max_elapsed_stops_when_the_sleep_would_overrun() -> None:
    """No retry is scheduled if sleeping would end past max_elapsed."""
    policy = RetryPolicy(max_attempts=0, jitter=0, max_elapsed=10)
    assert policy.next_delay(3, Flaky(), elapsed=6.0) == 4.0  # ends exactly at 10 s
    assert policy.next_delay(3, Flaky(), elapsed=6.5) is None
    assert policy.next_delay(1, Flaky(), elapsed=12.0) is None


def test_max_elapsed_caps_a_retry_after_hint() -> None:
    """A retry_after that would overrun max_elapsed ends the retries."""
    policy = RetryPolicy(max_attempts=0, jitter=0, max_elapsed=60)
    assert policy.next_delay(1, RateLimited(50), elapsed=5) == 50.0
    assert policy.next_delay(1, RateLimited(120), elapsed=5) is None


def test_attempt_numbers_start_at_one() -> None:
    """next_delay rejects attempt numbers below 1."""
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().next_delay(0, Flaky())
