"""Cancellation, lease loss and the fencing token, on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from conveyor import (
    CancelResult,
    Conveyor,
    JobCancelledError,
    JobState,
    Retention,
    Worker,
    current_job,
)
from conveyor.stores.base import JobStore, Outcome, now_ms
from tests.conftest import AppFactory

LEASE_MS = 60_000
HOUR_MS = 3_600_000


async def _claim_one(store: JobStore, worker: str = "w") -> Any:
    _, (claimed,) = await store.exchange([], ["default"], 1, worker, LEASE_MS)
    return claimed


async def test_every_claim_of_a_job_gets_a_greater_fence(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def work() -> None:
        return None

    job, other = await work.enqueue(), await work.options(queue="other").enqueue()
    assert job.fence == 0
    store = app.store
    fences = [(await _claim_one(store)).fence]
    await store.sweep_stalled(now_ms() + HOUR_MS, 60_000)  # a stall
    claimed = await _claim_one(store)
    fences.append(claimed.fence)
    retry = Outcome(job.id, claimed.token, "default", JobState.WAITING, now_ms(), run_at=0)
    await store.exchange([retry], [], 0, "w", LEASE_MS)  # a retry
    claimed = await _claim_one(store)
    fences.append(claimed.fence)
    await store.release([(job.id, claimed.token)], 60_000)  # a release at shutdown
    claimed = await _claim_one(store)
    fences.append(claimed.fence)
    failed = Outcome(job.id, claimed.token, "default", JobState.FAILED, now_ms(), error=b"{}")
    await store.exchange([failed], [], 0, "w", LEASE_MS)
    await app.jobs.retry(job.id)  # a manual retry resets attempts, never the fence
    fences.append((await _claim_one(store)).fence)

    assert fences == [1, 2, 3, 4, 5]
    await job.refresh()
    assert (job.fence, job.attempts, job.to_dict()["fence"]) == (5, 1, 5)
    assert (await other.refresh()).fence == 0  # per job, not per store


def _pause_lease_keeping(worker: Worker) -> asyncio.Event:
    """Hold the worker's renewals and lease checks (as in a long GC pause) until set."""
    resume = asyncio.Event()

    def paused(
        step: Callable[[], Coroutine[Any, Any, None]],
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def wait_then_run() -> None:
            await resume.wait()
            await step()

        return wait_then_run

    leases = worker._leases
    leases.renew = paused(leases.renew)  # type: ignore[method-assign]
    leases.flush_progress = paused(leases.flush_progress)  # type: ignore[method-assign]
    return resume


class _Fenced:
    """A task whose first claim waits (``proceed``) and whose later claims return their fence."""

    def __init__(self, app: Conveyor) -> None:
        self.first_started = asyncio.Event()
        self.proceed = asyncio.Event()
        self.fences: list[int] = []
        self.interrupted: list[int] = []

        @app.task(retries=3)
        async def fenced() -> int:
            ctx = current_job()
            self.fences.append(ctx.fence)
            if ctx.fence == 1:
                self.first_started.set()
                try:
                    await self.proceed.wait()
                except asyncio.CancelledError:
                    self.interrupted.append(ctx.fence)
                    raise
            return ctx.fence

        self.task = fenced


class _LostLease:
    """Worker A claims the job and pauses; its lease expires; worker B runs the job."""

    def __init__(self, app: Conveyor, fenced: _Fenced) -> None:
        self.app = app
        self.fenced = fenced
        self.worker_a = app.worker(concurrency=1)  # full while it holds the job: no re-claim
        self.resume_a = _pause_lease_keeping(self.worker_a)

    async def __aenter__(self) -> Any:
        job = await self.fenced.task.enqueue()
        self.running_a = asyncio.create_task(self.worker_a.run())
        await self.fenced.first_started.wait()
        await self.app.store.sweep_stalled(now_ms() + HOUR_MS, 60_000)  # A's lease ran out
        stats_b = await self.app.work(burst=True, concurrency=1)
        assert stats_b.completed == 1
        assert await job.wait(timeout=10) == 2
        return job

    async def __aexit__(self, *exc_info: object) -> None:
        self.resume_a.set()
        self.worker_a.stop()
        await self.running_a


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_lost_lease_cancels_the_attempt_and_the_next_claim_has_a_greater_fence(
    make_app: AppFactory,
) -> None:
    app = make_app(lease_seconds=60, shutdown_timeout=5)
    fenced = _Fenced(app)
    lost = _LostLease(app, fenced)
    worker_a = lost.worker_a
    async with lost as job:
        lost.resume_a.set()  # A checks its lease again: lost, so the attempt is cancelled
        await _until(lambda: bool(fenced.interrupted))

    assert fenced.fences == [1, 2]
    assert fenced.interrupted == [1]
    assert worker_a.stats.lost == 1
    assert worker_a.stats.processed == 0
    await job.refresh()
    assert (job.status, job.result, job.fence, job.stalls) == (JobState.COMPLETED, 2, 2, 1)


async def test_a_worker_that_lost_its_lease_cannot_finish_the_job(make_app: AppFactory) -> None:
    app = make_app(lease_seconds=60, shutdown_timeout=5)
    fenced = _Fenced(app)
    lost = _LostLease(app, fenced)
    worker_a = lost.worker_a
    async with lost as job:
        fenced.proceed.set()  # A's stale attempt returns 1 before A learns it lost the lease
        await _until(lambda: worker_a.stats.lost == 1)

    assert fenced.fences == [1, 2]
    assert worker_a.stats.completed == 0
    await job.refresh()
    assert (job.status, job.result, job.fence) == (JobState.COMPLETED, 2, 2)


class _Endless:
    def __init__(self, app: Conveyor, **options: Any) -> None:
        self.started = asyncio.Event()

        @app.task(**options)
        async def endless() -> None:
            self.started.set()
            await asyncio.sleep(3600)

        self.task = endless


async def _cancelled_while_running(app: Conveyor, endless: _Endless, cancel: Any) -> Any:
    job = await endless.task.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    await endless.started.wait()
    assert await cancel(job.id) is CancelResult.REQUESTED
    async with asyncio.timeout(30):  # far shorter than the lease renewal this must not need
        stats = await worker
    assert stats.cancelled == 1
    return await job.refresh()


async def test_a_cancel_asked_in_this_process_reaches_its_worker_at_once(
    make_app: AppFactory,
) -> None:
    # Renewals every 20 minutes and progress flushes every minute: only the direct wake-up
    # can deliver the cancellation within the test's time.
    app = make_app(lease_seconds=3600, sweep_interval=60, progress_flush_interval=60)
    endless = _Endless(app)
    job = await _cancelled_while_running(app, endless, app.jobs.cancel)
    assert job.status is JobState.CANCELLED


async def test_a_cancel_asked_elsewhere_is_seen_before_the_next_renewal(
    make_app: AppFactory,
) -> None:
    app = make_app(lease_seconds=3600, sweep_interval=60)

    async def cancel_from_another_process(job_id: str) -> CancelResult:
        return await app.store.cancel(job_id, now_ms(), 60_000)  # no in-process wake-up

    job = await _cancelled_while_running(app, _Endless(app), cancel_from_another_process)
    assert job.status is JobState.CANCELLED


async def test_a_task_that_stops_itself_on_the_flag_ends_cancelled_not_failed(
    make_app: AppFactory,
) -> None:
    app = make_app()
    started = asyncio.Event()

    @app.task(retries=0)
    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            current_job().raise_if_cancelled()  # raises JobCancelledError, not CancelledError
            raise

    job = await stubborn.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    await started.wait()
    await job.cancel()
    stats = await worker
    assert (stats.cancelled, stats.failed) == (1, 0)
    assert (await job.refresh()).status is JobState.CANCELLED


async def test_raising_job_cancelled_error_unasked_is_an_ordinary_failure(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task
    async def confused() -> None:
        raise JobCancelledError("not actually cancelled")

    job = await confused.enqueue()
    await app.work(burst=True)
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.error is not None and job.error.type == "JobCancelledError"


@pytest.mark.parametrize("state", ["waiting", "scheduled"])
async def test_cancelling_a_job_that_is_not_running_ends_it_at_once(
    make_app: AppFactory, state: str
) -> None:
    app = make_app()

    @app.task
    async def work() -> None:
        return None

    caller = work.options(delay=3600) if state == "scheduled" else work
    job = await caller.enqueue()
    assert job.status.value == state
    assert await job.cancel() is CancelResult.CANCELLED
    await job.refresh()
    assert (job.status, job.fence) == (JobState.CANCELLED, 0)


KEPT_SECONDS = 60


async def _assert_kept_for(app: Conveyor, job_id: str, seconds: int) -> None:
    """The finished job outlives a purge a little before ``seconds``, not one a little after."""
    await app.store.purge_expired(now_ms() + (seconds - 5) * 1000)
    assert await app.store.get(job_id) is not None, "purged before its retention ran out"
    await app.store.purge_expired(now_ms() + (seconds + 5) * 1000)
    assert await app.store.get(job_id) is None, "kept longer than its retention says"


@pytest.mark.parametrize(
    ("path", "set_on"),
    [("waiting", "task"), ("waiting", "queue"), ("running", "task"), ("released", "queue")],
)
async def test_a_cancelled_job_is_kept_as_long_as_its_retention_keeps_failed_jobs(
    make_app: AppFactory, path: str, set_on: str
) -> None:
    app = make_app()
    retention = Retention(failed_for=KEPT_SECONDS)
    if set_on == "queue":
        app.set_retention("reports", retention)
    started = asyncio.Event()

    @app.task(queue="reports", retention=retention if set_on == "task" else None)
    async def endless() -> None:
        started.set()
        await asyncio.sleep(3600)

    job = await endless.enqueue()
    if path == "waiting":
        assert await app.jobs.cancel(job.id) is CancelResult.CANCELLED
    elif path == "running":
        worker = asyncio.create_task(app.work(burst=True))
        await started.wait()
        assert await app.jobs.cancel(job.id) is CancelResult.REQUESTED
        assert (await worker).cancelled == 1
    else:  # the worker stops before it sees the cancel: it releases the job
        held = app.worker()
        resume = _pause_lease_keeping(held)
        running = asyncio.create_task(held.run())
        await started.wait()
        assert await app.jobs.cancel(job.id) is CancelResult.REQUESTED
        held.stop()
        held.stop()  # at once
        await _until(lambda: held.stats.released == 1)
        resume.set()
        assert (await running).cancelled == 0
    assert (await job.refresh()).status is JobState.CANCELLED
    await _assert_kept_for(app, job.id, KEPT_SECONDS)
