"""Parse and format human-friendly durations such as ``"300s"``, ``"1h30m"`` or ``"250ms"``.

Grammar (whitespace around the whole value and between components is ignored)::

    duration  := number                     plain seconds: "30", "1.5"
               | component+                 "5m", "1h30m", "1h 30m", "1.5s"
    component := number unit
    number    := digits [ "." digits ]
    unit      := "d" | "h" | "m" | "s" | "ms" | "us"

Units must go from largest to smallest and each may appear once, so ``"1h1h"`` and
``"30m1h"`` are rejected rather than guessed at. Signs, exponents and upper-case units are not
accepted. The resolution is one microsecond (that of :class:`~datetime.timedelta`); finer
values are rounded to the nearest microsecond.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["format_duration", "parse_duration", "to_seconds", "to_seconds_or_none"]

# Microseconds per unit, largest first; the order is also the required order in a value.
_UNITS: dict[str, int] = {
    "d": 86_400_000_000,
    "h": 3_600_000_000,
    "m": 60_000_000,
    "s": 1_000_000,
    "ms": 1_000,
    "us": 1,
}
_RANK = {unit: rank for rank, unit in enumerate(_UNITS)}
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_SECONDS = re.compile(_NUMBER)
# "ms" must be tried before "m" so that "250ms" is not read as "250m" followed by "s".
_COMPONENT = re.compile(rf"({_NUMBER})(ms|us|d|h|m|s)")
_MAX_US = timedelta.max // timedelta(microseconds=1)

_ACCEPTED = (
    "expected a number of seconds (30, 1.5) or numbers with units d, h, m, s, ms, us,"
    " largest unit first (300s, 5m, 1h30m, 1h 30m, 250ms, 2d)"
)


def to_seconds(value: float | timedelta, what: str) -> float:
    """A positive duration, given as float seconds or a timedelta, in seconds.

    Raises:
        TypeError: ``value`` is neither a number nor a timedelta.
        ValueError: ``value`` is not greater than zero (NaN included); ``what`` names it.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{what} must be float seconds or a timedelta, got {value!r}")
    if not seconds > 0:  # written so that NaN fails too
        raise ValueError(f"{what} must be > 0 seconds, got {value!r}")
    return float(seconds)


def to_seconds_or_none(value: float | timedelta | None, what: str) -> float | None:
    """As :func:`to_seconds`, with ``None`` (no limit) kept."""
    return None if value is None else to_seconds(value, what)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Convert a duration given as seconds, a unit string or a timedelta into a timedelta.

    Args:
        value: A non-negative number of seconds (``30``, ``1.5``, ``"30"``), a string of
            ``<number><unit>`` components with units ``d``, ``h``, ``m``, ``s``, ``ms``,
            ``us`` largest first (``"1h30m"``, ``"1h 30m"``, ``"250ms"``), or a timedelta.

    Returns:
        The duration, rounded to the nearest microsecond.

    Raises:
        ValueError: The value is negative, empty, malformed, not finite, too large, or a bool.
            The message quotes the value and lists the accepted forms.
        TypeError: The value is of any other type.
    """
    if isinstance(value, bool):  # bool is an int subclass; True seconds is surely a mistake
        raise ValueError(f"invalid duration {value!r}: a bool is not a duration; {_ACCEPTED}")
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"invalid duration {value!r}: must be a finite number of seconds")
        return _from_microseconds(Decimal(value) * _UNITS["s"], value)
    if isinstance(value, str):
        return _parse_text(value)
    raise TypeError(f"invalid duration {value!r}: expected str, int, float or timedelta")


def format_duration(value: timedelta) -> str:
    """Format a duration in the compact unit form that :func:`parse_duration` reads back.

    Args:
        value: A non-negative duration.

    Returns:
        Non-zero components largest first, e.g. ``"1h30m"``, ``"300ms"``, ``"1s500ms"``,
        ``"2d"``; ``"0s"`` for zero.

    Raises:
        ValueError: The duration is negative.
    """
    if value < timedelta(0):
        raise ValueError(f"cannot format negative duration {value!r}")
    rest = value // timedelta(microseconds=1)
    parts: list[str] = []
    for unit, size in _UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _parse_text(value: str) -> timedelta:
    text = value.strip()
    if not text:
        raise ValueError(f"invalid duration {value!r}: empty; {_ACCEPTED}")
    if text.startswith("-"):
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if _SECONDS.fullmatch(text):
        return _from_microseconds(Decimal(text) * _UNITS["s"], value)

    total = Decimal(0)
    previous: str | None = None
    position = 0
    while position < len(text):
        match = _COMPONENT.match(text, position)
        if match is None:
            raise ValueError(f"invalid duration {value!r}: {_ACCEPTED}")
        number, unit = match.groups()
        if previous is not None and _RANK[unit] <= _RANK[previous]:
            problem = "repeats" if unit == previous else "comes after a smaller unit"
            raise ValueError(f"invalid duration {value!r}: unit {unit!r} {problem}; {_ACCEPTED}")
        previous = unit
        total += Decimal(number) * _UNITS[unit]
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return _from_microseconds(total, value)


def _from_microseconds(total: Decimal, original: object) -> timedelta:
    if total < 0:
        raise ValueError(f"invalid duration {original!r}: must not be negative")
    micros = total.to_integral_value(rounding=ROUND_HALF_EVEN)
    if micros > _MAX_US:
        raise ValueError(f"invalid duration {original!r}: longer than {timedelta.max.days} days")
    return timedelta(microseconds=int(micros))
