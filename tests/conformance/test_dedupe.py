"""Deduplication by key on every store: debounce replaces the pending job, throttle ignores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor import BadInputError, Conveyor, JobState
from conveyor.clock import ManualClock
from tests.conftest import AppFactory


def _echo(app: Conveyor) -> Any:
    @app.task(name="echo")
    async def echo(n: int) -> int:
        return n

    return echo


async def _all_jobs(app: Conveyor) -> list[Any]:
    jobs = []
    for state in JobState:
        jobs += await app.jobs.list(state, limit=1000)
    return jobs


async def test_debounce_keeps_one_pending_job_with_the_last_arguments(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)
    first = await echo.options(debounce=("user:7", 30)).enqueue(1)
    assert first.status is JobState.SCHEDULED
    second = await echo.options(debounce=("user:7", 30)).enqueue(2)
    third = await echo.options(debounce=("user:7", 30)).enqueue(3)

    assert first.id == second.id == third.id
    (job,) = await _all_jobs(app)
    assert job.id == first.id
    assert job.args == ([3], {})
    assert job.status is JobState.SCHEDULED
    assert job.scheduled_for >= first.scheduled_for
    assert job.scheduled_for >= third.created_at


async def test_debounce_moves_a_waiting_job_back_to_scheduled(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)
    job = await echo.options(debounce=("k", 0)).enqueue(1)
    assert job.status is JobState.WAITING
    again = await echo.options(debounce=("k", 30)).enqueue(2)
    assert again.id == job.id
    assert again.status is JobState.SCHEDULED
    assert (await app.work(burst=True)).processed == 0
    assert (await app.jobs.counts())["default"][JobState.WAITING] == 0


async def test_a_zero_debounce_collapses_a_backlog_burst(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)
    for n in range(3):
        job = await echo.options(debounce=("k", 0)).enqueue(n)
    assert (await app.work(burst=True)).completed == 1
    assert await job.wait(timeout=5) == 2


async def test_debounced_job_runs_once_with_the_last_arguments(make_app: AppFactory) -> None:
    clock = ManualClock()
    app = make_app(clock=clock)
    echo = _echo(app)
    for n in range(5):
        job = await echo.options(debounce=("burst", 0.2)).enqueue(n)
    assert (await app.work(burst=True)).processed == 0
    clock.advance(0.25)
    stats = await app.work(burst=True)
    assert stats.completed == 1
    assert await job.wait(timeout=5) == 4


async def test_debounce_after_the_job_was_claimed_makes_a_new_job(make_app: AppFactory) -> None:
    clock = ManualClock()
    app = make_app(clock=clock)
    echo = _echo(app)
    first = await echo.options(debounce=("k", 0.01)).enqueue(1)
    clock.advance(0.03)
    assert (await app.work(burst=True)).completed == 1
    second = await echo.options(debounce=("k", 0.01)).enqueue(2)
    assert second.id != first.id
    assert (await first.refresh()).status is JobState.COMPLETED


async def test_keys_are_scoped_to_the_task_and_to_the_key(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)

    @app.task(name="other")
    async def other(n: int) -> int:
        return n

    a = await echo.options(debounce=("k", 30)).enqueue(1)
    b = await echo.options(debounce=("j", 30)).enqueue(1)
    c = await other.options(debounce=("k", 30)).enqueue(1)
    assert len({a.id, b.id, c.id}) == 3


async def test_throttle_returns_the_job_let_in_within_the_window(make_app: AppFactory) -> None:
    clock = ManualClock()
    app = make_app(clock=clock)
    echo = _echo(app)
    first = await echo.options(throttle=("digest", 0.3)).enqueue(1)
    assert first.status is JobState.WAITING
    second = await echo.options(throttle=("digest", 0.3)).enqueue(2)
    assert second.id == first.id
    assert second.args == ([1], {})  # ignored, not replaced
    assert len(await _all_jobs(app)) == 1

    clock.advance(0.35)
    third = await echo.options(throttle=("digest", 0.3)).enqueue(3)
    assert third.id != first.id
    assert len(await _all_jobs(app)) == 2


async def test_throttle_lets_a_new_job_in_when_the_last_was_removed(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)
    first = await echo.options(throttle=("t", 60)).enqueue(1)
    await app.jobs.remove(first.id)
    second = await echo.options(throttle=("t", 60)).enqueue(2)
    assert second.id != first.id
    assert (await app.jobs.get(second.id)).args == ([2], {})


async def test_a_batch_applies_keys_in_order(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)
    jobs = await app.enqueue_many(
        [
            echo.options(debounce=("k", 30)).call(1),
            echo.call(10),
            echo.options(debounce=("k", 30)).call(2),
            echo.options(throttle=("t", 30)).call(3),
            echo.options(throttle=("t", 30)).call(4),
        ]
    )
    assert jobs[0].id == jobs[2].id
    assert jobs[3].id == jobs[4].id
    assert len({j.id for j in jobs}) == 3
    assert (await app.jobs.get(jobs[0].id)).args == ([2], {})
    assert (await app.jobs.get(jobs[3].id)).args == ([3], {})


async def test_concurrent_throttled_enqueues_let_exactly_one_job_in(make_app: AppFactory) -> None:
    app = make_app()
    echo = _echo(app)
    jobs = await asyncio.gather(*(echo.options(throttle=("t", 60)).enqueue(n) for n in range(20)))
    assert len({job.id for job in jobs}) == 1
    assert len(await _all_jobs(app)) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"debounce": ("", 5)},
        {"debounce": ("k", -1)},
        {"throttle": ("k", 0)},
        {"throttle": ("k", -1)},
        {"throttle": ("k", float("inf"))},
        {"throttle": "k"},
        {"debounce": ("k", 5), "throttle": ("k", 5)},
        {"debounce": ("k", 5), "job_id": "x"},
        {"debounce": ("k", 5), "delay": 3},
    ],
)
async def test_bad_dedupe_options_write_nothing(
    make_app: AppFactory, options: dict[str, Any]
) -> None:
    app = make_app()
    echo = _echo(app)
    with pytest.raises(BadInputError):
        await echo.options(**options).enqueue(1)
    assert await _all_jobs(app) == []
