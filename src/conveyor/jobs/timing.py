"""When a schedule fires: cron expressions (croniter, in a time zone) and fixed intervals.

A :class:`Timing` turns a time into the schedule's next or previous tick,
in integer milliseconds since the epoch. Interval ticks are aligned on the
Unix epoch (``every=3600`` fires on the hour, UTC), so every worker computes
the same ticks without sharing an anchor.

Daylight saving time follows croniter on an aware datetime in ``tz``: a
wall time that does not exist (spring forward) fires at the first instant
after the gap (``30 2 * * *`` in Europe/Paris fires at 03:00 that day); a wall
time that happens twice (fall back) fires at both instants (``30 2 * * *``
fires at 02:30+02:00 and again at 02:30+01:00, an hour later).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import CroniterError, croniter

from conveyor.errors import InvalidScheduleError

MIN_EVERY_MS = 1
MAX_EVERY_MS = 366 * 86_400_000


class Timing(msgspec.Struct, frozen=True, omit_defaults=True):
    """A cron expression in a time zone, or an interval. Encoded, it is the store's ``timing``."""

    cron: str | None = None
    tz: str | None = None
    every_ms: int | None = None

    @classmethod
    def parse(cls, *, cron: str | None, every: float | timedelta | None, tz: str | None) -> Timing:
        """Validate a declaration; a bad one raises :class:`InvalidScheduleError`."""
        if (cron is None) == (every is None):
            raise InvalidScheduleError("give exactly one of cron=... or every=...")
        if every is not None:
            if tz is not None:
                raise InvalidScheduleError("tz applies to cron schedules only")
            return cls(every_ms=_every_ms(every))
        if not isinstance(cron, str) or not cron.strip():
            raise InvalidScheduleError(f"cron must be a non-empty string, got {cron!r}")
        zone = _zone(tz or "UTC")
        try:
            croniter(cron, datetime.now(zone)).get_next(datetime)  # "0 0 31 2 *" never fires
        except (CroniterError, ValueError, KeyError) as exc:
            raise InvalidScheduleError(f"invalid cron expression {cron!r}: {exc}") from None
        return cls(cron=" ".join(cron.split()), tz=tz or "UTC")

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, raw: str) -> Timing:
        return msgspec.json.decode(raw, type=cls)

    @property
    def every(self) -> float | None:
        return None if self.every_ms is None else self.every_ms / 1000

    def describe(self) -> str:
        if self.every_ms is not None:
            return f"every {self.every_ms / 1000:g}s"
        return f"{self.cron} ({self.tz})"

    def next_after(self, at_ms: int) -> int:
        """The first tick strictly after ``at_ms``."""
        if self.every_ms is not None:
            return (at_ms // self.every_ms + 1) * self.every_ms
        return _ms(self._iter(at_ms).get_next(datetime))

    def next_at_or_after(self, at_ms: int) -> int:
        return self.next_after(at_ms - 1)

    def prev_before(self, at_ms: int) -> int:
        """The last tick strictly before ``at_ms``."""
        if self.every_ms is not None:
            return ((at_ms - 1) // self.every_ms) * self.every_ms
        return _ms(self._iter(at_ms).get_prev(datetime))

    def _iter(self, at_ms: int) -> croniter:
        assert self.cron is not None
        start = datetime.fromtimestamp(at_ms / 1000, _zone(self.tz or "UTC"))
        return croniter(self.cron, start)


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidScheduleError(f"tz must be an IANA time zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(f"unknown time zone {name!r}") from None


def _every_ms(every: float | timedelta) -> int:
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not math.isfinite(seconds)
    ):
        raise InvalidScheduleError(f"every must be seconds or a timedelta, got {every!r}")
    ms = round(seconds * 1000)
    if not MIN_EVERY_MS <= ms <= MAX_EVERY_MS:
        raise InvalidScheduleError(f"every must be 0.001 s .. 366 days, got {every!r}")
    return ms


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
