"""Edge cases of leases, cancellation, shutdown and bad input, pinned on every store."""

from __future__ import annotations

import asyncio
import math

import pytest

from conveyor import BadInputError, CancelResult, JobState
from conveyor.stores.base import now_ms
from tests.conftest import AppFactory


async def test_leases_are_renewed_while_a_stopping_worker_drains(make_app: AppFactory) -> None:
    app = make_app(lease_seconds=0.3, sweep_interval=0.1, shutdown_timeout=5)
    started = asyncio.Event()

    @app.task
    async def long_running() -> str:
        started.set()
        await asyncio.sleep(1.0)
        return "done"

    job = await long_running.enqueue()
    worker = app.worker()
    running = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    await asyncio.sleep(0.6)  # two lease lengths into the drain
    assert await app.store.sweep_stalled(now_ms(), 60_000) == []
    stats = await running
    assert (stats.completed, stats.lost, stats.released) == (1, 0, 0)
    await job.refresh()
    assert (job.status, job.stalls) == (JobState.COMPLETED, 0)


async def test_closing_the_app_waits_for_its_workers_to_drain(make_app: AppFactory) -> None:
    app = make_app(shutdown_timeout=5)
    started = asyncio.Event()

    @app.task
    async def short() -> str:
        started.set()
        await asyncio.sleep(0.2)
        return "ok"

    job = await short.enqueue()
    running = asyncio.create_task(app.work())
    await started.wait()
    await app.close()
    stats = await running
    assert stats.completed == 1
    assert app.workers == []
    await app.open()
    assert (await app.jobs.get(job.id)).status is JobState.COMPLETED


async def test_a_cancel_request_stops_further_retries(make_app: AppFactory) -> None:
    app = make_app()
    started = asyncio.Event()
    proceed = asyncio.Event()
    runs: list[int] = []

    @app.task(retries=3, backoff=0)
    async def flaky() -> None:
        runs.append(1)
        started.set()
        await proceed.wait()
        raise ValueError("still broken")

    job = await flaky.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    await started.wait()
    assert await job.cancel() is CancelResult.REQUESTED
    proceed.set()
    await worker
    assert runs == [1]
    assert (await job.refresh()).status is JobState.CANCELLED


async def test_released_and_swept_jobs_honour_a_cancel_request(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def work(n: int) -> None:
        return None

    first, second = await app.enqueue_many([work.call(1), work.call(2)])
    _, claimed = await app.store.exchange([], ["default"], 2, "w1", 1)
    tokens = {c.id: c.token for c in claimed}
    await app.jobs.cancel(first.id)
    await app.jobs.cancel(second.id)
    assert await app.store.release([(first.id, tokens[first.id])], 60_000) == 1
    await asyncio.sleep(0.01)
    swept = await app.store.sweep_stalled(now_ms(), 60_000)
    assert [s.id for s in swept] == [second.id]
    for job in (first, second):
        await job.refresh()
        assert job.status is JobState.CANCELLED
        assert job.finished_at is not None


async def test_a_timeout_raised_by_the_task_itself_is_not_reported_as_the_job_timeout(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(timeout=30)
    async def calls_upstream() -> None:
        raise TimeoutError("upstream took too long")

    @app.task(timeout=0.05)
    async def too_slow() -> None:
        await asyncio.sleep(5)

    own, ours = await calls_upstream.enqueue(), await too_slow.enqueue()
    await app.work(burst=True)
    await own.refresh()
    await ours.refresh()
    assert own.error is not None
    assert (own.error.type, own.error.message) == ("TimeoutError", "upstream took too long")
    assert ours.error is not None
    assert ours.error.type == "JobTimeoutError"


async def test_a_failing_backoff_policy_fails_the_job_instead_of_stalling_it(
    make_app: AppFactory,
) -> None:
    app = make_app()
    delays = [0.0]

    @app.task(retries=3, backoff=lambda attempt: delays[attempt])  # IndexError on attempt 1
    async def flaky() -> None:
        raise ValueError("x")

    job = await flaky.enqueue()
    stats = await app.work(burst=True)
    assert stats.failed == 1
    await job.refresh()
    assert job.status is JobState.FAILED


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": "5"},
        {"timeout": 0},
        {"delay": math.inf},
        {"delay": math.nan},
        {"delay": -1},
        {"retries": -1},
        {"priority": 5000},
        {"job_id": ""},
        {"queue": ""},
    ],
)
async def test_malformed_per_call_options_are_rejected_before_anything_is_written(
    make_app: AppFactory, options: dict[str, object]
) -> None:
    app = make_app()

    @app.task
    async def noop() -> None:
        return None

    with pytest.raises(BadInputError):
        await noop.options(**options).enqueue()  # type: ignore[arg-type]
    counts = await app.jobs.counts()
    assert sum(sum(by_state.values()) for by_state in counts.values()) == 0
