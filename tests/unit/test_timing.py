"""Schedule timing: interval alignment, cron in a time zone, DST, and the fire plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor import InvalidScheduleError
from conveyor.jobs.scheduler import MAX_TICKS, plan_fire
from conveyor.jobs.timing import Timing
from conveyor.stores.schedules import ScheduleRecord

PARIS = ZoneInfo("Europe/Paris")


def _ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return round(datetime(year, month, day, hour, minute, tzinfo=PARIS).timestamp() * 1000)


def _local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, PARIS).isoformat()


def test_interval_ticks_are_aligned_on_the_epoch() -> None:
    timing = Timing.parse(cron=None, every=timedelta(seconds=5), tz=None)
    assert timing.next_after(12_345) == 15_000
    assert timing.next_after(15_000) == 20_000
    assert timing.next_at_or_after(15_000) == 15_000
    assert timing.prev_before(15_000) == 10_000
    assert timing.prev_before(15_001) == 15_000


def test_cron_ticks_follow_the_time_zone() -> None:
    timing = Timing.parse(cron="0 9 * * *", every=None, tz="Europe/Paris")
    assert _local(timing.next_after(_ms(2025, 1, 10, 12, 0))) == "2025-01-11T09:00:00+01:00"
    assert _local(timing.next_after(_ms(2025, 7, 10, 12, 0))) == "2025-07-11T09:00:00+02:00"
    assert _local(timing.prev_before(_ms(2025, 7, 10, 9, 0))) == "2025-07-09T09:00:00+02:00"


def test_a_wall_time_skipped_by_spring_forward_fires_after_the_gap() -> None:
    timing = Timing.parse(cron="30 2 * * *", every=None, tz="Europe/Paris")
    tick = timing.next_after(_ms(2025, 3, 29, 23, 0))
    assert _local(tick) == "2025-03-30T03:00:00+02:00"
    assert _local(timing.next_after(tick)) == "2025-03-31T02:30:00+02:00"


def test_a_wall_time_repeated_by_fall_back_fires_at_both_instants() -> None:
    timing = Timing.parse(cron="30 2 * * *", every=None, tz="Europe/Paris")
    first = timing.next_after(_ms(2025, 10, 25, 23, 0))
    second = timing.next_after(first)
    assert _local(first) == "2025-10-26T02:30:00+02:00"
    assert _local(second) == "2025-10-26T02:30:00+01:00"
    assert second - first == 3_600_000


def test_timing_encodes_canonically() -> None:
    spaced = Timing.parse(cron="*/5  *  * * *", every=None, tz=None)
    assert spaced.encode() == '{"cron":"*/5 * * * *","tz":"UTC"}'
    assert Timing.decode(spaced.encode()) == spaced
    assert Timing.parse(cron=None, every=0.25, tz=None).encode() == '{"every_ms":250}'


@pytest.mark.parametrize("every", [0, -1, float("nan"), True, "5"])
def test_bad_intervals_are_rejected(every: object) -> None:
    with pytest.raises(InvalidScheduleError):
        Timing.parse(cron=None, every=every, tz=None)  # type: ignore[arg-type]


def _record(next_fire: int, *, every_ms: int = 10, grace_ms: int = 60_000) -> ScheduleRecord:
    return ScheduleRecord(
        name="s",
        queue="q",
        task="t",
        timing=Timing(every_ms=every_ms).encode(),
        payload=b"[[],{}]",
        options=b"{}",
        priority=0,
        max_stalled=1,
        missed="skip",
        grace_ms=grace_ms,
        next_fire=next_fire,
        version=3,
    )


def test_a_long_catch_up_fires_in_bounded_steps() -> None:
    fire = plan_fire(_record(1_000), now=1_000 + 10 * (MAX_TICKS + 500))
    assert len(fire.jobs) == MAX_TICKS
    assert fire.next_fire == 1_000 + 10 * MAX_TICKS  # the next step goes on from here
    assert (fire.expected, fire.version) == (1_000, 3)
    assert [j.run_at for j in fire.jobs[:2]] == [1_000, 1_010]


def test_skipping_every_missed_tick_fires_nothing_and_moves_on() -> None:
    fire = plan_fire(_record(1_000, every_ms=1_000, grace_ms=0), now=50_500)
    assert fire.jobs == []
    assert fire.last_fire is None
    assert fire.next_fire == 51_000
