"""A rate: how many units per window, and its text form (``"20/minute"``).

>>> Rate.parse("100/10s")
Rate(limit=100, window=10.0)
>>> Rate.parse("20 per minute").window
60.0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TypeAlias

from conveyor.errors import BadInputError

MAX_LIMIT = 1_000_000_000
MAX_WINDOW = 366 * 86_400.0
"""The longest window, in seconds: a year."""

_UNITS = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+(?:\.\d+)?|\.\d+)?\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units per ``window`` seconds (for a concurrency policy: ``limit`` in
    flight, each slot leased for ``window`` seconds).

    Written as text: ``"20/minute"``, ``"100/10s"``, ``"1000 per hour"``, ``"5/1.5s"``;
    units ``ms``, ``s``/``sec``/``second``, ``m``/``min``/``minute``, ``h``/``hour``,
    ``d``/``day`` (plural or not); a bare number is seconds.
    """

    limit: int
    window: float

    def __post_init__(self) -> None:
        problems = rate_problems(self.limit, self.window)
        if problems:
            raise BadInputError("; ".join(problems))

    @classmethod
    def parse(cls, text: str) -> Rate:
        """The rate written as ``text``; ``BadInputError`` says how to write one."""
        match = _RATE.match(text) if isinstance(text, str) else None
        unit = match.group(3).lower() if match else ""
        if unit not in _UNITS and unit.endswith("s"):  # plural: minutes, hrs, days
            unit = unit[:-1]
        if match is None or unit not in _UNITS:
            raise BadInputError(
                f"a rate looks like 20/minute, 100/10s or 1000 per hour; got {text!r}"
            )
        count, number = match.group(1), match.group(2)
        return cls(int(count), (float(number) if number else 1.0) * _UNITS[unit])

    @property
    def window_ms(self) -> int:
        return round(self.window * 1000)

    def __str__(self) -> str:
        for unit, seconds in (("day", 86_400.0), ("hour", 3600.0), ("minute", 60.0)):
            if self.window == seconds:
                return f"{self.limit}/{unit}"
        return f"{self.limit}/{self.window:g}s"


RateLike: TypeAlias = "Rate | str | tuple[int, float]"
"""A :class:`Rate`, its text (``"20/minute"``) or ``(limit, window seconds)``."""


def to_rate(value: RateLike) -> Rate:
    """A :class:`Rate` from any way of writing one."""
    if isinstance(value, Rate):
        return value
    if isinstance(value, str):
        return Rate.parse(value)
    if isinstance(value, tuple) and len(value) == 2:
        return Rate(*value)
    raise BadInputError(
        f"a rate is a Rate, text such as '20/minute' or (limit, seconds); got {value!r}"
    )


def rate_problems(limit: object, window: object) -> list[str]:
    problems = []
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        problems.append(f"a rate's limit must be an integer 1..{MAX_LIMIT}, got {limit!r}")
    if (
        not isinstance(window, int | float)
        or isinstance(window, bool)
        or not math.isfinite(window)
        or not 0.001 <= window <= MAX_WINDOW
    ):
        problems.append(f"a rate's window must be 0.001..{MAX_WINDOW:g} seconds, got {window!r}")
    return problems
