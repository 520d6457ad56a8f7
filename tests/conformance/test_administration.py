"""Queue administration, retention, metrics and the sync facade on every store."""

from __future__ import annotations

import asyncio
import math

import pytest

from conveyor import BadInputError, ConflictError, JobState, NotFoundError, Retention
from conveyor.jobs.queues import require_known_queue
from conveyor.stores.base import now_ms
from tests.conftest import AppFactory


async def test_counts_by_queue_and_state(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="emails")
    async def send(n: int) -> None:
        if n == 0:
            raise ValueError("bounced")

    await app.enqueue_many([send.call(n) for n in range(4)])
    await send.options(delay=600).enqueue(9)
    counts = await app.jobs.counts()
    assert counts["emails"][JobState.WAITING] == 4
    assert counts["emails"][JobState.SCHEDULED] == 1
    await app.work(burst=True)
    counts = await app.jobs.counts()
    assert counts["emails"][JobState.COMPLETED] == 3
    assert counts["emails"][JobState.FAILED] == 1
    assert counts["emails"][JobState.WAITING] == 0


async def test_listing_is_newest_first_and_paginated(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def noop(n: int) -> None:
        return None

    ids = []
    for n in range(5):
        ids.append((await noop.enqueue(n)).id)
        await asyncio.sleep(0.002)
    page1 = await app.jobs.list("waiting", limit=2)
    page2 = await app.jobs.list(JobState.WAITING, "default", offset=2, limit=2)
    page3 = await app.jobs.list("waiting", offset=4, limit=2)
    assert [j.id for j in page1 + page2 + page3] == ids[::-1]
    assert await app.jobs.list("completed") == []


async def test_retry_sends_a_failed_job_back_with_attempts_reset(make_app: AppFactory) -> None:
    app = make_app()
    fail = True

    @app.task
    async def fragile() -> str:
        if fail:
            raise ValueError("broken")
        return "fixed"

    job = await fragile.enqueue()
    await app.work(burst=True)
    assert (await job.refresh()).status is JobState.FAILED
    with pytest.raises(ConflictError):
        await app.jobs.retry((await fragile.enqueue()).id)
    fail = False
    retried = await app.jobs.retry(job.id)
    assert (retried.status, retried.attempts, retried.error) == (JobState.WAITING, 0, None)
    await app.work(burst=True)
    assert await job.wait(timeout=5) == "fixed"


async def test_remove_deletes_a_job_but_never_an_active_one(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def noop() -> None:
        return None

    job = await noop.enqueue()
    await app.jobs.remove(job.id)
    with pytest.raises(NotFoundError):
        await app.jobs.get(job.id)
    with pytest.raises(NotFoundError):
        await app.jobs.remove(job.id)
    active = await noop.enqueue()
    await app.store.exchange([], ["default"], 1, "w1", 60_000)
    with pytest.raises(ConflictError):
        await app.jobs.remove(active.id)


async def test_a_paused_queue_is_not_worked_until_resumed(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="exports")
    async def export() -> None:
        return None

    await app.jobs.pause("exports")
    job = await export.enqueue()
    assert (await app.work(burst=True)).processed == 0
    assert {q.name: q.paused for q in await app.jobs.queues()}["exports"] is True
    await app.jobs.resume("exports")
    assert (await app.work(burst=True)).completed == 1
    assert (await job.refresh()).status is JobState.COMPLETED


async def test_clean_deletes_by_state_and_age(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def noop(n: int) -> None:
        return None

    await app.enqueue_many([noop.call(n) for n in range(3)])
    await app.work(burst=True)
    await noop.enqueue(99)
    assert await app.jobs.clean("default", "completed", older_than=3600) == 0
    await asyncio.sleep(0.01)
    assert await app.jobs.clean("default", "completed", limit=2) == 2
    assert await app.jobs.clean("default", "completed") == 1
    counts = await app.jobs.counts()
    assert counts["default"][JobState.WAITING] == 1
    with pytest.raises(ConflictError):
        await app.jobs.clean("default", "active")


async def test_clean_refuses_an_age_that_is_no_number_of_seconds_or_a_limit_below_one(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task
    async def noop() -> None:
        return None

    await noop.enqueue()
    await app.work(burst=True)
    for older_than, limit in [(math.nan, 10), (math.inf, 10), (60.0, 0), (60.0, -1)]:
        with pytest.raises(BadInputError, match="older_than must be a finite number"):
            await app.jobs.clean("default", "completed", older_than=older_than, limit=limit)
    assert (await app.jobs.counts())["default"][JobState.COMPLETED] == 1


async def test_count_retention_keeps_the_newest_finished_jobs(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retention=Retention(completed=3, failed=1))
    async def numbered(n: int) -> int:
        if n < 0:
            raise ValueError(n)
        return n

    for n in range(8):
        await numbered.enqueue(n)
        await app.work(burst=True)
    for n in (-1, -2):
        await numbered.enqueue(n)
        await app.work(burst=True)
    completed = await app.jobs.list("completed")
    assert len(completed) == 3
    assert {j.result for j in completed} == {5, 6, 7}
    failed = await app.jobs.list("failed")
    assert [j.args[0] for j in failed] == [[-2]]


async def test_age_retention_purges_expired_jobs(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retention=Retention(completed_for=0))
    async def brief() -> None:
        return None

    @app.task(retention=Retention(completed_for=3600))
    async def kept() -> None:
        return None

    short, long = await brief.enqueue(), await kept.enqueue()
    await app.work(burst=True)
    # The worker's own maintenance pass may already have purged it; either way it goes.
    await app.store.purge_expired(now_ms() + 1)
    with pytest.raises(NotFoundError):
        await short.refresh()
    assert (await long.refresh()).status is JobState.COMPLETED


async def test_queue_retention_applies_to_tasks_without_their_own(make_app: AppFactory) -> None:
    app = make_app()
    app.set_retention("audit", Retention(completed=2))

    @app.task(queue="audit")
    async def record(n: int) -> None:
        return None

    for n in range(5):
        await record.enqueue(n)
        await app.work(burst=True)
    assert len(await app.jobs.list("completed", "audit")) == 2


async def test_metrics_report_jobs_by_state_and_outcomes(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="mail", name="mail.send")
    async def send(ok: bool) -> None:
        if not ok:
            raise ValueError("nope")

    await app.enqueue_many([send.call(True), send.call(True), send.call(False)])
    await send.options(delay=600).enqueue(True)
    await app.work(burst=True)
    text = (await app.metrics_text()).decode()
    assert 'conveyor_jobs_completed_total{queue="mail",task="mail.send"} 2.0' in text
    assert 'conveyor_jobs_failed_total{queue="mail",task="mail.send"} 1.0' in text
    assert 'conveyor_jobs{queue="mail",state="scheduled"} 1.0' in text
    assert 'conveyor_job_run_seconds_count{queue="mail",task="mail.send"} 3.0' in text
    assert 'conveyor_job_wait_seconds_count{queue="mail",task="mail.send"} 3.0' in text
    assert 'conveyor_queue_oldest_waiting_seconds{queue="mail"} 0.0' in text


async def test_readiness_reports_the_store(make_app: AppFactory) -> None:
    app = make_app()
    report = await app.health.readiness()
    assert report.status.value == "ok"
    assert report.checks["store"].status.value == "ok"
    assert (await app.health.liveness()).status.value == "ok"


async def test_sync_facade_enqueues_and_reads_jobs(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def double(n: int) -> int:
        return n * 2

    job = await asyncio.to_thread(double.enqueue_sync, 21)
    assert job.status is JobState.WAITING
    await app.work(burst=True)
    seen = await asyncio.to_thread(lambda: app.sync.get(job.id).status)
    assert seen is JobState.COMPLETED
    assert await asyncio.to_thread(job.wait, 5) == 42
    assert (await asyncio.to_thread(app.sync.counts))["default"][JobState.COMPLETED] == 1


async def test_a_long_page_of_jobs_lists_in_full(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def noop(n: int) -> None:
        return None

    await app.enqueue_many([noop.call(n) for n in range(250)])
    page = await app.jobs.list("waiting", limit=1000)
    assert len(page) == 250
    assert sorted(j.args[0][0] for j in page) == list(range(250))


async def test_a_queue_is_known_once_a_job_task_schedule_worker_pause_or_limit_names_it(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="by-task")
    async def noop() -> None:
        return None

    for queue in ("by-job", "by-schedule", "by-limit", "by-pause", "by-worker"):
        with pytest.raises(NotFoundError, match=f"no queue named '{queue}'"):
            await require_known_queue(app, queue)
    await noop.options(queue="by-job").enqueue()
    await app.schedules.add(noop.options(queue="by-schedule").call(), every=3600)
    await app.jobs.set_queue_limits("by-limit", concurrency=2)
    await app.jobs.pause("by-pause")
    worker = app.worker(queues=["by-worker"])
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while not await app.store.workers():  # its first heartbeat
                await asyncio.sleep(0.01)
        for queue in ("by-task", "by-job", "by-schedule", "by-limit", "by-pause", "by-worker"):
            await require_known_queue(app, queue)
    finally:
        worker.stop()
        await running
