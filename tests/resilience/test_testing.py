"""belugaflow.testing: no-backoff mode and FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from belugaflow import testing
from belugaflow.resilience import backoff_disabled


@pytest.fixture(autouse=True)
def _restore_mode() -> Iterator[None]:
    yield
    testing.set_testing(False)


def test_backoff_is_on_by_default() -> None:
    """Outside testing mode the engines sleep between attempts."""
    assert not backoff_disabled()


def test_set_testing_toggles_backoff() -> None:
    """set_testing() turns retry sleeps off and set_testing(False) back on."""
    testing.set_testing()
    assert backoff_disabled()
    testing.set_testing(False)
    assert not backoff_disabled()


def test_no_backoff_restores_the_previous_setting() -> None:
    """no_backoff() disables sleeps inside the block only, even when nested or on error."""
    with testing.no_backoff():
        assert backoff_disabled()
        with testing.no_backoff():
            assert backoff_disabled()
        assert backoff_disabled()
    assert not backoff_disabled()
    with pytest.raises(KeyError), testing.no_backoff():
        raise KeyError
    assert not backoff_disabled()


def test_fake_clock_moves_only_when_advanced() -> None:
    """FakeClock returns its start time until advanced by seconds or a timedelta."""
    clock = testing.FakeClock(5)
    assert clock() == 5.0
    clock.advance(1.5)
    clock.advance(timedelta(milliseconds=500))
    assert clock() == 7.0
    assert repr(clock) == "FakeClock(7)"


def test_fake_clock_never_goes_back() -> None:
    """Advancing by a negative amount raises ValueError."""
    with pytest.raises(ValueError, match="forward"):
        testing.FakeClock().advance(-1)
