"""Tests for parse_duration and format_duration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from belugaflow._duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, timedelta(seconds=30)),
        (1.5, timedelta(seconds=1.5)),
        (0, timedelta(0)),
        ("30", timedelta(seconds=30)),
        ("1.5", timedelta(seconds=1.5)),
        ("300s", timedelta(seconds=300)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (" 1h  30m ", timedelta(hours=1, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("2d", timedelta(days=2)),
        ("1.5s", timedelta(seconds=1.5)),
        ("1.5h", timedelta(minutes=90)),
        ("1d2h3m4s5ms6us", timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5006)),
        ("0.1s", timedelta(milliseconds=100)),
        (timedelta(minutes=2), timedelta(minutes=2)),
    ],
)
def test_parse_accepted_forms(value: str | int | float | timedelta, expected: timedelta) -> None:
    """Every documented form parses to the expected timedelta."""
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5x", "expected a number"),
        ("m5", "expected a number"),
        ("5m5", "expected a number"),
        ("1h1h", "repeats"),
        ("30m1h", "comes after a smaller unit"),
        ("5M", "expected a number"),
        ("5 m", "expected a number"),
        ("1e3", "expected a number"),
        ("1.s", "expected a number"),
        ("nan", "expected a number"),
        ("-5s", "must not be negative"),
        ("-5", "must not be negative"),
        (-1, "must not be negative"),
        (-0.5, "must not be negative"),
        (timedelta(seconds=-1), "must not be negative"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (True, "bool"),
        (False, "bool"),
        ("9999999999d", "longer than"),
    ],
)
def test_parse_rejects(value: object, reason: str) -> None:
    """Malformed, negative, non-finite, huge and bool values raise a ValueError that says why."""
    with pytest.raises(ValueError, match=reason) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert repr(value) in str(info.value)


def test_parse_error_lists_accepted_forms() -> None:
    """A malformed value's error message quotes it and shows the accepted forms."""
    with pytest.raises(ValueError) as info:
        parse_duration("5x")
    assert "'5x'" in str(info.value)
    assert "1h30m" in str(info.value) and "250ms" in str(info.value)


def test_parse_rejects_other_types() -> None:
    """A value that is neither str, number nor timedelta raises TypeError."""
    with pytest.raises(TypeError):
        parse_duration([1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=300), "300ms"),
        (timedelta(seconds=1.5), "1s500ms"),
        (timedelta(days=2), "2d"),
        (timedelta(microseconds=7), "7us"),
    ],
)
def test_format(value: timedelta, expected: str) -> None:
    """format_duration gives the compact form, largest unit first."""
    assert format_duration(value) == expected


def test_format_rejects_negative() -> None:
    """A negative duration cannot be formatted."""
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)))
def test_round_trip(value: timedelta) -> None:
    """Any non-negative timedelta survives format_duration then parse_duration unchanged."""
    assert parse_duration(format_duration(value)) == value


@given(st.integers(min_value=0, max_value=10**12))
def test_integer_seconds(seconds: int) -> None:
    """An integer, as a number or a string, is that many seconds."""
    assert parse_duration(seconds) == timedelta(seconds=seconds)
    assert parse_duration(str(seconds)) == timedelta(seconds=seconds)
