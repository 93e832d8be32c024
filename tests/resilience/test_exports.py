"""The public surface of belugaflow.resilience and belugaflow.testing."""

from __future__ import annotations

import belugaflow.resilience as resilience
from belugaflow import testing


def test_resilience_exports_are_pinned_and_sorted() -> None:
    """__all__ lists exactly the public names, sorted."""
    assert resilience.__all__ == [
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


def test_exported_objects_show_the_public_module() -> None:
    """Every exported object reports belugaflow.resilience as its module."""
    for name in resilience.__all__:
        assert getattr(resilience, name).__module__ == "belugaflow.resilience", name


def test_testing_exports_are_sorted() -> None:
    """belugaflow.testing's __all__ is sorted and every name exists."""
    assert testing.__all__ == sorted(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)
