"""Job events: written with each change, read as an async iterator, resumable by cursor."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import Backoff, CancelResult, JobEvent, JobEventKind, JobEvents, current_job
from conveyor.stores.base import now_ms
from tests.conftest import AppFactory

K = JobEventKind


async def _collect(events: JobEvents, until: int) -> list[JobEvent]:
    """Read until ``until`` events arrived (the test fails on a 30 s safety timeout)."""
    found: list[JobEvent] = []
    async with asyncio.timeout(30):
        while len(found) < until:
            found += await events.next_batch(block=0.5)
    return found


async def test_a_job_reports_progress_retrying_and_completed_in_order(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retries=1, backoff=Backoff.fixed(0))
    async def flaky() -> str:
        ctx = current_job()
        ctx.set_progress(ctx.attempt)
        if ctx.attempt == 1:
            raise ValueError("first try fails")
        return "done"

    events = await app.jobs.events(queue="default").start()
    job = await flaky.enqueue()
    await app.work(burst=True)
    seen = await _collect(events, 4)
    assert [(e.kind, e.job_id) for e in seen] == [
        (K.PROGRESS, job.id),
        (K.RETRYING, job.id),
        (K.PROGRESS, job.id),
        (K.COMPLETED, job.id),
    ]
    assert [e.data for e in seen if e.kind is K.PROGRESS] == [b"1", b"2"]
    assert seen[1].data is not None and b"first try fails" in seen[1].data
    assert all(e.queue == "default" and e.at > 0 for e in seen)


async def test_stalls_failures_and_cancellations_are_events_too(make_app: AppFactory) -> None:
    app = make_app(max_stalled=0)

    @app.task
    async def work() -> None:
        return None

    events = await app.jobs.events().start()
    stalled, waiting = await work.enqueue(), await work.options(delay=60).enqueue()
    await app.store.exchange([], ["default"], 1, "w", 60_000)
    await app.store.sweep_stalled(now_ms() + 3_600_000, 60_000)  # stalls once: fails
    assert await waiting.cancel() is CancelResult.CANCELLED
    seen = await _collect(events, 3)
    assert [(e.kind, e.job_id) for e in seen] == [
        (K.STALLED, stalled.id),
        (K.FAILED, stalled.id),
        (K.CANCELLED, waiting.id),
    ]


async def test_a_subscription_sees_only_its_job_or_queue(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def work(n: int) -> int:
        return n

    by_queue = await app.jobs.events(queue="other").start()
    first = await work.enqueue(1)
    by_job = await app.jobs.events(job_id=first.id, kinds=["completed"]).start()
    await work.enqueue(2)
    elsewhere = await work.options(queue="other").enqueue(3)
    await app.work(burst=True, queues=["default", "other"])
    assert [e.job_id for e in await _collect(by_job, 1)] == [first.id]
    assert [e.job_id for e in await _collect(by_queue, 1)] == [elsewhere.id]
    assert await by_job.next_batch(block=0.2) == []


async def test_a_listener_resumes_from_its_cursor_without_missing_events(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task
    async def work(n: int) -> int:
        return n

    listener = await app.jobs.events().start()
    jobs = [await work.enqueue(1)]
    await app.work(burst=True)
    assert [e.job_id for e in await _collect(listener, 1)] == [jobs[0].id]
    cursor = listener.cursor
    del listener  # disconnected; meanwhile two more jobs finish
    jobs += [await work.enqueue(2), await work.enqueue(3)]
    await app.work(burst=True)
    resumed = app.jobs.events(cursor=cursor)
    assert [e.job_id for e in await _collect(resumed, 2)] == [j.id for j in jobs[1:]]


async def test_wait_returns_when_the_job_finishes_in_another_worker(make_app: AppFactory) -> None:
    app = make_app()
    release = asyncio.Event()

    @app.task
    async def slow() -> str:
        await release.wait()
        return "finished"

    job = await slow.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    waiter = asyncio.create_task(job.wait(timeout=30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    release.set()
    assert await waiter == "finished"
    await worker


async def test_a_wait_that_times_out_says_when_no_worker_serves_the_queue(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="reports")
    async def report() -> None:
        return None

    job = await report.enqueue()
    with pytest.raises(TimeoutError, match="no worker is running for queue 'reports'"):
        await job.wait(timeout=0.05)

    await app.jobs.pause("reports")  # a worker serves the queue but runs nothing
    worker = app.worker(queues=["reports"])
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while not await app.store.workers():  # its first heartbeat
                await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError) as waited:
            await job.wait(timeout=0.05)
        assert str(waited.value) == f"job {job.id} still waiting after 0.05s"
    finally:
        worker.stop()
        await running
