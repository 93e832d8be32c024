"""Shared fixtures of the graph tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from belugaflow import testing


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """Skip retry sleeps for the duration of one test (attempt counts are unchanged)."""
    with testing.no_backoff():
        yield
