"""Claiming ahead: a worker at low concurrency holds a few jobs under lease before a
slot frees, renews them, gives them back when they wait too long or it stops, and
never keeps work from another worker for long."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from conveyor import CancelResult, Conveyor, JobState
from conveyor.jobs.prefetch import PREFETCH_UP_TO
from tests.conftest import AppFactory


class _Gated:
    """A task that records its start and waits for ``gate``."""

    def __init__(self, app: Conveyor) -> None:
        self.gate = asyncio.Event()
        self.started: list[int] = []
        self.first_started = asyncio.Event()

        @app.task
        async def gated(n: int) -> int:
            self.started.append(n)
            self.first_started.set()
            await self.gate.wait()
            return n

        self.task = gated


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():
            await asyncio.sleep(0.02)


async def _active(app: Conveyor) -> int:
    counts = await app.jobs.counts()
    return sum(by_state.get(JobState.ACTIVE, 0) for by_state in counts.values())


async def test_a_worker_holds_at_most_four_jobs_ahead_and_none_above_concurrency_four(
    make_app: AppFactory,
) -> None:
    for concurrency, held in ((2, 2 + PREFETCH_UP_TO), (PREFETCH_UP_TO + 1, PREFETCH_UP_TO + 1)):
        app = make_app(prefetch_max_wait=60, shutdown_timeout=0)
        gated = _Gated(app)
        await app.enqueue_many([gated.task.call(n) for n in range(20)])
        worker = app.worker(concurrency=concurrency)
        running = asyncio.create_task(worker.run())
        await _until(lambda: _has_started(gated, concurrency))
        await asyncio.sleep(0.3)  # a few more exchanges, had the worker wanted more
        assert await _active(app) == held
        assert len(gated.started) == concurrency
        worker.stop()
        stats = await running
        assert stats.released == held
        assert await _active(app) == 0
        await app.close()


async def _has_started(gated: _Gated, count: int) -> bool:
    return len(gated.started) >= count


async def test_a_job_held_ahead_has_its_lease_renewed_and_runs_once(
    make_app: AppFactory,
) -> None:
    app = make_app(lease_seconds=0.3, sweep_interval=0.1, prefetch_max_wait=60)
    gated = _Gated(app)
    first = await gated.task.enqueue(1)
    second = await gated.task.enqueue(2)
    worker = app.worker(concurrency=1)
    running = asyncio.create_task(worker.run())
    await gated.first_started.wait()
    assert (await second.refresh()).status is JobState.ACTIVE  # held ahead
    await asyncio.sleep(1.2)  # four leases: the sweep would have taken it back
    await second.refresh()
    assert (second.status, second.stalls, second.attempts) == (JobState.ACTIVE, 0, 1)
    assert gated.started == [1]
    gated.gate.set()
    assert await first.wait(timeout=5) == 1
    assert await second.wait(timeout=5) == 2
    worker.stop()
    stats = await running
    assert (stats.completed, stats.lost, stats.released) == (2, 0, 0)
    assert gated.started == [1, 2]
    assert (await second.refresh()).stalls == 0


async def test_a_stopping_worker_gives_back_held_jobs_at_once(make_app: AppFactory) -> None:
    app = make_app(prefetch_max_wait=60, shutdown_timeout=30)
    gated = _Gated(app)
    first = await gated.task.enqueue(1)
    second = await gated.task.enqueue(2)
    worker = app.worker(concurrency=1)
    running = asyncio.create_task(worker.run())
    await gated.first_started.wait()
    worker.stop()  # the first job may take its 30 s; the held one must not wait for it

    async def second_is_back() -> bool:
        return (await second.refresh()).status is JobState.WAITING

    await _until(second_is_back, 5)
    assert second.attempts == 0
    assert not running.done(), "the worker should still be draining the first job"
    gated.gate.set()
    stats = await running
    assert (stats.completed, stats.released) == (1, 1)
    assert await first.wait(timeout=5) == 1
    assert gated.started == [1]


async def test_a_held_job_that_is_cancelled_ends_cancelled_without_running(
    make_app: AppFactory,
) -> None:
    app = make_app(prefetch_max_wait=60)
    gated = _Gated(app)
    first = await gated.task.enqueue(1)
    second = await gated.task.enqueue(2)
    worker = app.worker(concurrency=1)
    running = asyncio.create_task(worker.run())
    await gated.first_started.wait()
    assert await second.cancel() is CancelResult.REQUESTED  # held: active in the store

    async def second_is_cancelled() -> bool:
        return (await second.refresh()).status is JobState.CANCELLED

    await _until(second_is_cancelled, 5)
    gated.gate.set()
    assert await first.wait(timeout=5) == 1
    worker.stop()
    stats = await running
    assert (stats.completed, stats.cancelled) == (1, 1)
    assert gated.started == [1]


async def test_two_workers_on_one_store_both_get_work(make_app: AppFactory) -> None:
    """The first worker claims both jobs (one to run, one ahead); the held one goes back
    after ``prefetch_max_wait`` for the idle worker. Each job waits until both run."""
    app = make_app()
    both_running = asyncio.Barrier(2)

    @app.task
    async def together(n: int) -> int:
        async with asyncio.timeout(10):
            await both_running.wait()
        return n

    jobs = [await together.enqueue(n) for n in range(2)]
    first, second = app.worker(concurrency=1), app.worker(concurrency=1)
    runs = [asyncio.create_task(first.run())]
    await _until(lambda: _active_is(app, 2))  # the first worker holds both
    runs.append(asyncio.create_task(second.run()))
    assert [await job.wait(timeout=15) for job in jobs] == [0, 1]
    workers = {(await job.refresh()).worker for job in jobs}
    assert workers == {first.id, second.id}
    first.stop()
    second.stop()
    stats = await asyncio.gather(*runs)
    assert sum(s.completed for s in stats) == 2
    assert stats[0].released == 1


async def _active_is(app: Conveyor, count: int) -> bool:
    return await _active(app) == count
