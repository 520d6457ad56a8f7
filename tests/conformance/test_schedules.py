"""Schedules on every store: each tick fires exactly once, missed ticks follow the policy.

Most tests drive the store the way the scheduler loop does (read due rows,
plan with croniter, compare-and-set), with explicit times, so they do not
depend on the clock; a few run real workers.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from conveyor import (
    Conveyor,
    InvalidArgumentsError,
    InvalidScheduleError,
    JobState,
    NotFoundError,
    current_job,
)
from conveyor.clock import ManualClock
from conveyor.jobs.options import Call, EnqueueOptions
from conveyor.jobs.schedule import Missed
from conveyor.jobs.scheduler import Scheduler, plan_fire, tick_job_id
from conveyor.stores.base import now_ms
from conveyor.stores.schedules import ScheduleRecord
from tests.conftest import AppFactory

MINUTE = 60_000


def _base() -> int:
    """A minute boundary well in the past, so fired jobs are ready at once."""
    return (now_ms() // MINUTE - 600) * MINUTE


def _tick_task(app: Conveyor) -> Any:
    @app.task(name="tick")
    async def tick() -> None:
        return None

    return tick


async def _stored(
    app: Conveyor,
    *,
    next_fire: int,
    name: str = "tick",
    every: float | None = 60,
    cron: str | None = None,
    missed: Missed = "skip",
    grace: float = 60.0,
) -> ScheduleRecord:
    """Write a schedule of the ``tick`` task whose next fire time is ``next_fire``."""
    call: Call[Any] = Call(app.tasks["tick"], (), {}, EnqueueOptions())
    if cron is not None:
        every = None
    record = app.schedules._record(call, name, cron, every, None, missed, grace)
    await app.open()
    await app.schedules.store.put_schedule(msgspec.structs.replace(record, next_fire=next_fire))
    stored = await app.schedules.store.get_schedule(name)
    assert stored is not None
    return stored


async def _fire(app: Conveyor, now: int) -> list[bool]:
    due, _ = await app.schedules.store.due_schedules(app.queue_names(), now, 100)
    return await app.schedules.store.fire_schedules([plan_fire(r, now) for r in due])


async def _job_ids(app: Conveyor) -> set[str]:
    jobs = await app.jobs.list(JobState.WAITING, limit=1000)
    return {job.id for job in jobs}


async def test_a_due_tick_fires_one_job_with_a_deterministic_id(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    await _stored(app, next_fire=base)

    assert await _fire(app, base + 10) == [True]
    (job,) = await app.jobs.list(JobState.WAITING)
    assert job.id == tick_job_id("tick", base) == f"tick@{base}"
    assert round(job.scheduled_for.timestamp() * 1000) == base
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None
    assert (record.next_fire, record.last_fire) == (base + MINUTE, base)


async def test_racing_fires_of_one_tick_apply_once(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    record = await _stored(app, next_fire=base)
    plans = [plan_fire(record, base + 5) for _ in range(5)]

    results = await asyncio.gather(*(app.schedules.store.fire_schedules([p]) for p in plans))
    assert sorted(r[0] for r in results) == [False, False, False, False, True]
    assert await _job_ids(app) == {f"tick@{base}"}
    # A replayed fire (the same plan again) changes nothing.
    assert await app.schedules.store.fire_schedules([plans[0]]) == [False]
    assert await _job_ids(app) == {f"tick@{base}"}


async def test_a_worker_that_is_late_within_grace_fires_every_tick(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    await _stored(app, next_fire=base, every=1, grace=60)

    assert await _fire(app, base + 4_500) == [True]
    assert await _job_ids(app) == {f"tick@{base + s * 1000}" for s in range(5)}
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None and record.next_fire == base + 5_000


async def test_missed_ticks_are_skipped_by_default(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    await _stored(app, next_fire=base, every=60, grace=90)  # down for 10 minutes

    now = base + 10 * MINUTE + 5
    assert await _fire(app, now) == [True]
    # Ticks more than 90 s late are dropped; the two within grace still fire.
    assert await _job_ids(app) == {f"tick@{base + 9 * MINUTE}", f"tick@{base + 10 * MINUTE}"}
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None and record.next_fire == base + 11 * MINUTE


async def test_run_once_fires_one_job_for_all_missed_ticks(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    await _stored(app, next_fire=base, every=60, grace=30, missed="run_once")

    now = base + 10 * MINUTE + 40_000  # the latest tick is 40 s late: missed too
    assert await _fire(app, now) == [True]
    assert await _job_ids(app) == {f"tick@{base + 10 * MINUTE}"}
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None
    assert (record.next_fire, record.last_fire) == (base + 11 * MINUTE, base + 10 * MINUTE)


async def test_a_cron_schedule_fires_on_its_ticks(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    hour = (base // (60 * MINUTE)) * 60 * MINUTE
    await _stored(app, next_fire=hour + 15 * MINUTE, cron="*/15 * * * *", grace=3600)

    assert await _fire(app, hour + 45 * MINUTE) == [True]
    expected = {f"tick@{hour + m * MINUTE}" for m in (15, 30, 45)}
    assert await _job_ids(app) == expected
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None and record.next_fire == hour + 60 * MINUTE


async def test_schedules_not_yet_due_report_when_the_next_is(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    await _stored(app, next_fire=base + 5_000, name="later")
    await _stored(app, next_fire=base + 2_000, name="sooner")

    due, later = await app.schedules.store.due_schedules(["default"], base, 100)
    assert (due, later) == ([], base + 2_000)
    due, later = await app.schedules.store.due_schedules(["default"], base + 3_000, 100)
    assert [r.name for r in due] == ["sooner"]
    assert later == base + 5_000
    due, _ = await app.schedules.store.due_schedules(["elsewhere"], base + 9_000, 100)
    assert due == []


async def test_replacing_a_schedule_keeps_its_next_fire_unless_its_timing_changes(
    make_app: AppFactory,
) -> None:
    app = make_app()
    tick = _tick_task(app)
    first = await app.schedules.add(tick, every=3600)
    again = await app.schedules.add(tick, every=3600)
    assert again.next_fire == first.next_fire
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None
    unchanged_version = record.version

    await app.schedules.add(tick, every=3600, missed="run_once")
    record = await app.schedules.store.get_schedule("tick")
    assert record is not None
    assert record.version == unchanged_version + 1
    assert record.next_fire == round(first.next_fire.timestamp() * 1000)

    changed = await app.schedules.add(tick, every=7200)
    assert round(changed.next_fire.timestamp() * 1000) % 7_200_000 == 0


async def test_a_fire_planned_before_a_change_is_refused(make_app: AppFactory) -> None:
    app = make_app()
    _tick_task(app)
    base = _base()
    record = await _stored(app, next_fire=base)
    stale = plan_fire(record, base + 1)
    await _stored(app, next_fire=base, missed="run_once")  # same timing, new version

    assert await app.schedules.store.fire_schedules([stale]) == [False]
    assert await _job_ids(app) == set()
    assert await _fire(app, base + 1) == [True]


async def test_add_list_get_and_remove(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(name="report")
    async def report(user_id: int, fmt: str = "csv") -> None:
        return None

    added = await app.schedules.add(
        report.call(7, fmt="xlsx"), cron="0 9 * * 1-5", tz="Europe/Paris", name="morning"
    )
    assert added.name == "morning"
    assert (added.task, added.queue, added.cron, added.tz) == (
        "report",
        "default",
        "0 9 * * 1-5",
        "Europe/Paris",
    )
    assert (added.args, added.kwargs, added.every, added.missed) == (
        (7,),
        {"fmt": "xlsx"},
        None,
        "skip",
    )
    local = added.next_fire.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    await app.schedules.add(report.call(1), every=timedelta(minutes=5), name="often")

    assert [s.name for s in await app.schedules.list()] == ["morning", "often"]
    assert (await app.schedules.get("often")).every == 300.0
    await app.schedules.remove("morning")
    assert [s.name for s in await app.schedules.list()] == ["often"]
    with pytest.raises(NotFoundError):
        await app.schedules.remove("morning")
    with pytest.raises(NotFoundError):
        await app.schedules.get("morning")


async def test_moving_a_schedule_to_another_queue(make_app: AppFactory) -> None:
    app = make_app()
    tick = _tick_task(app)
    await app.schedules.add(tick, every=3600)
    moved = await app.schedules.add(tick.options(queue="other").call(), every=3600)
    assert moved.queue == "other"
    assert [s.queue for s in await app.schedules.list()] == ["other"]
    due, later = await app.schedules.store.due_schedules(["default"], now_ms() + 7_200_000, 10)
    assert (due, later) == ([], None)
    due, _ = await app.schedules.store.due_schedules(["other"], now_ms() + 7_200_000, 10)
    assert [r.name for r in due] == ["tick"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression"),
        ({"cron": "not cron"}, "invalid cron expression"),
        ({"cron": "0 0 31 2 *"}, "invalid cron expression"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 0}, "every must be"),
        ({"every": 60, "tz": "UTC"}, "cron schedules only"),
        ({}, "exactly one of"),
        ({"cron": "* * * * *", "every": 5}, "exactly one of"),
        ({"every": 5, "missed": "sometimes"}, "missed must be"),
        ({"every": 5, "grace": -1}, "grace must be"),
    ],
)
async def test_invalid_schedules_raise_and_write_nothing(
    make_app: AppFactory, kwargs: dict[str, Any], message: str
) -> None:
    app = make_app()
    tick = _tick_task(app)
    with pytest.raises(InvalidScheduleError, match=message):
        await app.schedules.add(tick, **kwargs)
    assert await app.schedules.list() == []


async def test_a_bad_declaration_registers_neither_task_nor_schedule(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(InvalidScheduleError):

        @app.task(name="bad", cron="* * * 13 *")
        async def bad() -> None:
            return None

    with pytest.raises(InvalidArgumentsError):

        @app.task(name="needs_args", every=5)
        async def needs_args(n: int) -> None:
            return None

    assert app.tasks == {}
    assert app.schedules.declared == {}


async def test_a_declared_schedule_is_written_by_a_worker_and_fires(make_app: AppFactory) -> None:
    clock = ManualClock()
    app = make_app(clock=clock)
    runs: list[str] = []

    @app.task(name="beat", every=0.05)
    async def beat() -> None:
        runs.append(current_job().job_id)

    worker = app.worker()
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(30):
            while len(runs) < 3:  # the clock runs five times faster than the wall
                clock.advance(0.05)
                await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await running
    (schedule,) = await app.schedules.list()
    assert (schedule.name, schedule.every) == ("beat", 0.05)
    ticks = sorted(int(run.partition("@")[2]) for run in runs)
    assert all(run.startswith("beat@") for run in runs)
    assert all(tick % 50 == 0 for tick in ticks)
    assert len(set(ticks)) == len(ticks)


async def test_a_schedule_that_cannot_be_planned_does_not_stop_the_others(
    make_app: AppFactory,
) -> None:
    app = make_app()
    _tick_task(app)
    base = (now_ms() // MINUTE) * MINUTE  # the current minute: due, and within grace
    good = await _stored(app, next_fire=base, name="good", grace=3600)
    broken = msgspec.structs.replace(good, name="broken", timing='{"cron":"0 0 31 2 *"}')
    await app.schedules.store.put_schedule(broken)

    delay = await Scheduler(app, ["default"]).step()
    assert 0 <= delay <= 1.0
    ids = await _job_ids(app)
    assert f"good@{base}" in ids
    assert not any(i.startswith("broken@") for i in ids)
