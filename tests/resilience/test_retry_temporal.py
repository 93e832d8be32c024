"""RetryPolicy converts to and from temporalio.common.RetryPolicy."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import RetryPolicy as RetryPolicyProto
from temporalio.common import RetryPolicy as TemporalRetryPolicy

from belugaflow.resilience import RetryPolicy


class PaymentDeclined(Exception):
    pass


def test_to_temporal_maps_every_field() -> None:
    """Each Temporal field gets its counterpart; non-retryable types become their names."""
    policy = RetryPolicy(
        max_attempts=5,
        initial_interval=0.25,
        backoff_coefficient=1.5,
        max_interval=timedelta(seconds=20),
        non_retryable=(PaymentDeclined, ValueError),
        non_retryable_names=("InvalidOrder",),
    )
    assert policy.to_temporal() == TemporalRetryPolicy(
        initial_interval=timedelta(milliseconds=250),
        backoff_coefficient=1.5,
        maximum_interval=timedelta(seconds=20),
        maximum_attempts=5,
        non_retryable_error_types=[
            "PaymentDeclined",
            "ValueError",
            "InvalidOrder",
            "NonRetryableError",
        ],
    )


def test_to_temporal_keeps_unset_max_interval_and_unlimited_attempts() -> None:
    """An unset max_interval stays None (Temporal's 100× default) and 0 stays unlimited."""
    converted = RetryPolicy(max_attempts=0).to_temporal()
    assert converted.maximum_interval is None
    assert converted.maximum_attempts == 0
    assert converted.non_retryable_error_types == ["NonRetryableError"]


def test_to_temporal_result_passes_temporal_validation() -> None:
    """Temporal accepts the converted policy and applies the same 100× cap."""
    proto = RetryPolicyProto()
    RetryPolicy(initial_interval=2).to_temporal().apply_to_proto(proto)
    assert proto.maximum_interval.ToTimedelta() == timedelta(seconds=200)


def test_from_temporal_keeps_names_and_drops_the_implicit_one() -> None:
    """Names land in non_retryable_names, without the always-added NonRetryableError."""
    temporal = TemporalRetryPolicy(
        initial_interval=timedelta(seconds=3),
        backoff_coefficient=3.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=7,
        non_retryable_error_types=["PaymentDeclined", "NonRetryableError"],
    )
    policy = RetryPolicy.from_temporal(temporal, jitter=0.0, max_elapsed=120)
    assert policy == RetryPolicy(
        max_attempts=7,
        initial_interval=3,
        backoff_coefficient=3.0,
        max_interval=60,
        jitter=0.0,
        non_retryable_names=("PaymentDeclined",),
        max_elapsed=120,
    )
    assert not policy.is_retryable(PaymentDeclined())
    assert policy.to_temporal() == temporal


def test_from_temporal_of_the_temporal_default() -> None:
    """Temporal's own default policy converts to unlimited attempts with default intervals."""
    policy = RetryPolicy.from_temporal(TemporalRetryPolicy())
    assert policy == RetryPolicy(max_attempts=0)


def test_round_trip_without_types_is_exact() -> None:
    """A policy without non_retryable types survives to_temporal/from_temporal unchanged."""
    policy = RetryPolicy(
        max_attempts=4,
        initial_interval=0.1,
        backoff_coefficient=1.0,
        max_interval=0.1,
        non_retryable_names=("A", "B"),
    )
    assert RetryPolicy.from_temporal(policy.to_temporal()) == policy


def test_to_temporal_without_temporalio_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without temporalio installed, the ImportError says which extra to install."""
    monkeypatch.setitem(sys.modules, "temporalio.common", None)
    with pytest.raises(ImportError, match=r"belugaflow\[temporal\]"):
        RetryPolicy().to_temporal()
