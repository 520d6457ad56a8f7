"""Leases, stalls, cancellation and shutdown: at-least-once without double finishes."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from conveyor import CancelResult, Conveyor, JobState, current_job
from conveyor.clock import ManualClock
from conveyor.stores.base import LeaseStatus, Outcome, ProgressUpdate, now_ms
from tests.conftest import AppFactory

LEASE_MS = 60_000


class _Endless:
    """A task that runs until it is cancelled, noting that it started and was interrupted."""

    def __init__(self, app: Conveyor) -> None:
        self.started = asyncio.Event()
        self.interrupted: list[bool] = []

        @app.task(retries=3)
        async def endless() -> None:
            self.started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.interrupted.append(True)
                raise

        self.task = endless


class _SyncWatcher:
    """A sync task that polls ``current_job().cancelled`` for up to 5 s, noting how it ended.

    Its thread cannot be interrupted: the flag is the only way the worker can stop it.
    """

    def __init__(self, app: Conveyor, **options: Any) -> None:
        self.started = asyncio.Event()
        self.ended: list[str] = []
        self._done = threading.Event()
        loop = asyncio.get_running_loop()

        @app.task(**options)
        def watch() -> str:
            ctx = current_job()
            loop.call_soon_threadsafe(self.started.set)
            try:
                for _ in range(500):
                    if ctx.cancelled:
                        self.ended.append("saw the flag")
                        return "stopped"
                    time.sleep(0.01)
                self.ended.append("ran out")
                return "ran out"
            finally:
                self._done.set()

        self.task = watch

    async def how_it_ended(self) -> list[str]:
        """Wait for the task's thread (which may outlive the worker) to return."""
        await asyncio.to_thread(self._done.wait, 10)
        return self.ended


def _completed(job_id: str, token: str, queue: str = "default") -> Outcome:
    return Outcome(job_id, token, queue, JobState.COMPLETED, now_ms(), result=b"1")


async def test_claim_takes_at_most_the_asked_number_in_queue_order(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="low")
    async def low(n: int) -> None:
        return None

    @app.task(queue="high")
    async def high(n: int) -> None:
        return None

    await app.enqueue_many([low.call(n) for n in range(3)] + [high.call(n) for n in range(3)])
    _, claimed = await app.store.exchange([], ["high", "low"], 4, "w1", LEASE_MS)
    assert [c.queue for c in claimed] == ["high", "high", "high", "low"]
    assert len({c.token for c in claimed}) == 1
    assert all(c.attempts == 1 for c in claimed)
    _, rest = await app.store.exchange([], ["high", "low"], 10, "w2", LEASE_MS)
    assert [c.queue for c in rest] == ["low", "low"]
    assert {c.id for c in claimed}.isdisjoint(c.id for c in rest)


async def test_expired_lease_returns_the_job_to_waiting_once_then_fails_it(
    make_app: AppFactory,
) -> None:
    clock = ManualClock()
    app = make_app(max_stalled=1, clock=clock)

    @app.task
    async def work() -> None:
        return None

    job = await work.enqueue()
    store = app.store
    _, (first,) = await store.exchange([], ["default"], 1, "w1", 1)
    clock.advance(0.01)
    stalled = await store.sweep_stalled(clock.now_ms(), 60_000)
    assert [(s.id, s.failed) for s in stalled] == [(job.id, False)]
    await job.refresh()
    assert (job.status, job.stalls, job.attempts) == (JobState.WAITING, 1, 0)

    _, (second,) = await store.exchange([], ["default"], 1, "w2", 1)
    assert second.token != first.token
    clock.advance(0.01)
    stalled = await store.sweep_stalled(clock.now_ms(), 60_000)
    assert [(s.id, s.failed) for s in stalled] == [(job.id, True)]
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.error is not None and job.error.type == "StalledError"


async def test_a_live_lease_is_not_swept(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def work() -> None:
        return None

    await work.enqueue()
    await app.store.exchange([], ["default"], 1, "w1", LEASE_MS)
    assert await app.store.sweep_stalled(now_ms(), 60_000) == []


async def test_a_stale_token_can_never_finish_renew_or_report_on_the_job(
    make_app: AppFactory,
) -> None:
    clock = ManualClock()
    app = make_app(clock=clock)

    @app.task
    async def work() -> None:
        return None

    job = await work.enqueue()
    store = app.store
    _, (old,) = await store.exchange([], ["default"], 1, "w1", 1)
    clock.advance(0.01)
    await store.sweep_stalled(clock.now_ms(), 60_000)
    _, (new,) = await store.exchange([], ["default"], 1, "w2", LEASE_MS)

    accepted, _ = await store.exchange([_completed(job.id, old.token)], [], 0, "w1", LEASE_MS)
    assert accepted == [False]
    failed = Outcome(job.id, old.token, "default", JobState.FAILED, now_ms(), error=b"{}")
    assert (await store.exchange([failed], [], 0, "w1", LEASE_MS))[0] == [False]
    assert await store.renew([(job.id, old.token)], LEASE_MS) == {job.id: LeaseStatus.LOST}
    update = ProgressUpdate(job.id, old.token, progress=b"99")
    assert await store.update_progress([update], 10) == {job.id: LeaseStatus.LOST}
    record = await store.get(job.id)
    assert record is not None
    assert (record.state, record.progress, record.worker) == (JobState.ACTIVE, None, "w2")

    assert await store.renew([(job.id, new.token)], LEASE_MS) == {}
    accepted, _ = await store.exchange([_completed(job.id, new.token)], [], 0, "w2", LEASE_MS)
    assert accepted == [True]
    assert (await job.refresh()).status is JobState.COMPLETED


async def test_renewal_extends_the_lease(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def work() -> None:
        return None

    job = await work.enqueue()
    _, (claimed,) = await app.store.exchange([], ["default"], 1, "w1", 50)
    assert await app.store.renew([(job.id, claimed.token)], LEASE_MS) == {}
    await asyncio.sleep(0.06)
    assert await app.store.sweep_stalled(now_ms(), 60_000) == []


async def test_release_gives_the_job_back_as_if_never_claimed(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def work() -> None:
        return None

    job = await work.enqueue()
    _, (claimed,) = await app.store.exchange([], ["default"], 1, "w1", LEASE_MS)
    assert await app.store.release([(job.id, claimed.token), (job.id, "stale")], 60_000) == 1
    await job.refresh()
    assert (job.status, job.attempts) == (JobState.WAITING, 0)


async def test_graceful_stop_lets_short_jobs_finish_and_releases_the_rest(
    make_app: AppFactory,
) -> None:
    app = make_app(shutdown_timeout=0.2)
    started = asyncio.Event()

    @app.task
    async def quick() -> str:
        return "ok"

    @app.task
    async def endless() -> None:
        started.set()
        await asyncio.sleep(3600)

    long_job = await endless.enqueue()
    worker = app.worker(concurrency=2)
    running = asyncio.create_task(worker.run())
    await started.wait()
    short_job = await quick.enqueue()
    assert await short_job.wait(timeout=5) == "ok"
    worker.stop()
    stats = await running
    assert stats.released == 1
    await long_job.refresh()
    assert (long_job.status, long_job.attempts) == (JobState.WAITING, 0)


async def test_cancelling_a_waiting_job_means_it_never_runs(make_app: AppFactory) -> None:
    app = make_app()
    runs: list[int] = []

    @app.task
    async def work() -> None:
        runs.append(1)

    job = await work.enqueue()
    assert await job.cancel() is CancelResult.CANCELLED
    assert await job.cancel() is CancelResult.FINISHED
    await app.work(burst=True)
    assert runs == []
    assert (await job.refresh()).status is JobState.CANCELLED


async def test_cancelling_a_running_job_cancels_its_attempt(make_app: AppFactory) -> None:
    app = make_app(lease_seconds=0.3, sweep_interval=0.1)
    endless = _Endless(app)
    job = await endless.task.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    await endless.started.wait()
    assert await job.cancel() is CancelResult.REQUESTED
    stats = await asyncio.wait_for(worker, 5)
    assert stats.cancelled == 1
    assert endless.interrupted == [True]
    await job.refresh()
    assert job.status is JobState.CANCELLED
    assert job.attempts == 1


async def test_a_sync_task_sees_the_cancel_flag(make_app: AppFactory) -> None:
    app = make_app(lease_seconds=0.3, sweep_interval=0.1)
    watcher = _SyncWatcher(app)
    job = await watcher.task.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    await watcher.started.wait()
    await job.cancel()
    await asyncio.wait_for(worker, 10)
    assert (await job.refresh()).status is JobState.CANCELLED
    assert await watcher.how_it_ended() == ["saw the flag"]


async def test_a_sync_task_past_its_timeout_sees_the_cancel_flag(make_app: AppFactory) -> None:
    app = make_app()
    watcher = _SyncWatcher(app, timeout=0.2, retries=0)
    job = await watcher.task.enqueue()
    await app.work(burst=True)
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.error is not None and job.error.type == "JobTimeoutError"
    assert await watcher.how_it_ended() == ["saw the flag"]


async def test_a_sync_task_still_running_at_shutdown_sees_the_cancel_flag(
    make_app: AppFactory,
) -> None:
    app = make_app(shutdown_timeout=0.1)
    watcher = _SyncWatcher(app)
    job = await watcher.task.enqueue()
    worker = app.worker()
    running = asyncio.create_task(worker.run())
    await watcher.started.wait()
    worker.stop()
    assert (await running).released == 1
    assert (await job.refresh()).status is JobState.WAITING
    assert await watcher.how_it_ended() == ["saw the flag"]


async def test_a_worker_that_loses_its_lease_abandons_the_attempt(
    make_app: AppFactory,
) -> None:
    app = make_app(lease_seconds=0.3, sweep_interval=0.1, shutdown_timeout=0.05)
    endless = _Endless(app)
    job = await endless.task.enqueue()
    worker = app.worker()
    running = asyncio.create_task(worker.run())
    await endless.started.wait()
    # Another process decides the lease expired (as after a long pause of this one).
    await app.store.sweep_stalled(now_ms() + 3_600_000, 60_000)
    for _ in range(100):
        if endless.interrupted:
            break
        await asyncio.sleep(0.05)
    worker.stop()
    stats = await running
    assert endless.interrupted[:1] == [True]
    assert stats.lost == 1
    await job.refresh()
    assert job.stalls == 1
