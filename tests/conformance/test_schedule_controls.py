"""Pausing, resuming and triggering schedules on every store.

A paused schedule does not fire (and a fire planned before the pause loses
its compare-and-set); a restarted worker declaring it again leaves it
paused; resuming it handles the ticks it missed by its ``missed`` policy,
as after an outage. Triggering enqueues its job now with id
``<name>@manual-<ms>``, paused or not.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Conveyor, JobState, NotFoundError
from conveyor.clock import ManualClock
from conveyor.jobs.scheduler import Scheduler, plan_fire
from tests.conformance.conftest import START_MS
from tests.conftest import AppFactory

MINUTE = 60_000


def _app(make_app: AppFactory) -> tuple[Conveyor, ManualClock, Any]:
    clock = ManualClock(START_MS)
    app = make_app(clock=clock)

    @app.task(name="report", queue="reports", search=["region"])
    async def report(region: str) -> None:
        return None

    return app, clock, report


async def _jobs(app: Conveyor) -> list[str]:
    page = await app.jobs.list_page(JobState.WAITING, "reports", limit=200)
    return sorted(job.id for job in page.jobs)


async def test_a_paused_schedule_does_not_fire_until_resumed(make_app: AppFactory) -> None:
    app, clock, report = _app(make_app)
    await app.schedules.add(report.call("eu"), every=60, name="eu", grace=90)
    scheduler = Scheduler(app, ["reports"])
    paused = await app.schedules.pause("eu")
    assert paused.paused
    clock.advance(60)
    await scheduler.step()
    assert await _jobs(app) == []
    due, later = await app.schedules.store.due_schedules(["reports"], clock.now_ms(), 10)
    assert (due, later) == ([], None)
    # Paused through 4 more ticks; resumed, the ticks more than `grace` late are skipped.
    clock.advance(4 * 60)
    resumed = await app.schedules.resume("eu")
    assert not resumed.paused
    await scheduler.step()
    now = clock.now_ms()
    assert await _jobs(app) == [f"eu@{now - MINUTE}", f"eu@{now}"]


async def test_a_fire_planned_before_a_pause_is_refused(make_app: AppFactory) -> None:
    app, clock, report = _app(make_app)
    await app.schedules.add(report.call("eu"), every=60, name="eu")
    clock.advance(60)
    (record,), _ = await app.schedules.store.due_schedules(["reports"], clock.now_ms(), 10)
    plan = plan_fire(record, clock.now_ms())
    await app.schedules.pause("eu")
    assert await app.schedules.store.fire_schedules([plan]) == [False]
    assert await _jobs(app) == []


async def test_declaring_a_paused_schedule_again_keeps_it_paused(make_app: AppFactory) -> None:
    app, _, report = _app(make_app)
    await app.schedules.add(report.call("eu"), every=60, name="eu")
    await app.schedules.pause("eu")
    await app.schedules.add(report.call("eu"), every=60, name="eu")  # a restart declares it
    await app.schedules.add(report.call("us"), every=60, name="eu")  # a changed definition
    stored = await app.schedules.get("eu")
    assert stored.paused and stored.args == ("us",)
    assert [s.paused for s in await app.schedules.list()] == [True]


async def test_trigger_enqueues_the_schedules_job_now_even_when_paused(
    make_app: AppFactory,
) -> None:
    app, clock, report = _app(make_app)
    schedule = await app.schedules.add(report.call("eu"), every=3600, name="eu")
    await app.schedules.pause("eu")
    job = await app.schedules.trigger("eu")
    assert job.id == f"eu@manual-{clock.now_ms()}"
    assert (job.status, job.args) == (JobState.WAITING, (["eu"], {}))
    found = await app.jobs.search(field=("region", "eu"))
    assert [j.id for j in found.jobs] == [job.id]
    assert (await app.schedules.get("eu")).next_fire == schedule.next_fire
    with pytest.raises(NotFoundError):
        await app.schedules.trigger("nope")
    with pytest.raises(NotFoundError):
        await app.schedules.pause("nope")


async def test_scheduled_jobs_carry_their_tasks_search_fields(make_app: AppFactory) -> None:
    app, clock, report = _app(make_app)
    await app.schedules.add(report.call("apac"), every=60, name="apac")
    clock.advance(60)
    await Scheduler(app, ["reports"]).step()
    found = await app.jobs.search(field=("region", "apac"))
    assert [j.id for j in found.jobs] == [f"apac@{clock.now_ms()}"]
