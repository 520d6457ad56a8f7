"""Job semantics every store must share: states, order, retries, timeouts, results."""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import (
    Backoff,
    BadInputError,
    InvalidArgumentsError,
    Job,
    JobFailedError,
    JobState,
    JobWaitTimeoutError,
    NonRetryableError,
    NotFoundError,
    PayloadTooLargeError,
    Retry,
    SerializationError,
    current_job,
)
from conveyor.clock import ManualClock
from tests.conftest import AppFactory


async def test_enqueued_job_waits_then_completes_with_its_result(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    job = await add.enqueue(2, 3)
    assert (job.status, job.attempts) == (JobState.WAITING, 0)
    stats = await app.work(burst=True)
    assert stats.completed == 1
    assert await job.wait(timeout=5) == 5
    assert job.status is JobState.COMPLETED
    assert job.attempts == 1
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at >= job.started_at >= job.created_at


async def test_waiting_past_its_timeout_raises_a_typed_timeout_and_the_job_goes_on(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    job = await add.enqueue(2, 3)
    with pytest.raises(JobWaitTimeoutError, match=r"still waiting after 0\.05s") as raised:
        await job.wait(timeout=0.05)
    assert isinstance(raised.value, TimeoutError)
    assert (raised.value.job_id, raised.value.state) == (job.id, "waiting")
    with pytest.raises(BadInputError, match="nan"):
        await job.wait(timeout=math.nan)
    await app.work(burst=True)
    assert await job.wait(timeout=5) == 5


async def test_sync_task_runs_in_a_worker_thread(make_app: AppFactory) -> None:
    app = make_app()
    seen: list[str] = []

    @app.task
    def where() -> str:
        seen.append(threading.current_thread().name)
        return "done"

    job = await where.enqueue()
    await app.work(burst=True)
    assert await job.wait(timeout=5) == "done"
    assert seen and seen[0].startswith("conveyor-task")


async def test_delayed_job_stays_scheduled_until_due(make_app: AppFactory) -> None:
    clock = ManualClock()
    app = make_app(clock=clock)

    @app.task
    async def ping() -> str:
        return "pong"

    job = await ping.options(delay=0.4).enqueue()
    assert job.status is JobState.SCHEDULED
    assert (await app.work(burst=True)).processed == 0
    assert (await job.refresh()).status is JobState.SCHEDULED
    clock.advance(0.45)
    assert (await app.work(burst=True)).completed == 1
    assert (await job.refresh()).status is JobState.COMPLETED


async def test_job_at_a_past_time_is_ready_at_once(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def ping() -> None:
        return None

    job = await ping.options(at=datetime.now(UTC) - timedelta(seconds=5)).enqueue()
    assert job.status is JobState.WAITING


async def test_higher_priority_runs_first_and_fifo_within_a_priority(
    make_app: AppFactory,
) -> None:
    app = make_app()
    order: list[str] = []

    @app.task
    async def record(label: str) -> None:
        order.append(label)

    for label, priority in [("a0", 0), ("b5", 5), ("c0", 0), ("d5", 5), ("e-1", -1), ("f0", 0)]:
        await record.options(priority=priority).enqueue(label)
    await app.work(burst=True, concurrency=1)
    assert order == ["b5", "d5", "a0", "c0", "f0", "e-1"]


async def test_second_enqueue_with_the_same_job_id_returns_the_existing_job(
    make_app: AppFactory,
) -> None:
    app = make_app()
    runs: list[int] = []

    @app.task
    async def once(n: int) -> int:
        runs.append(n)
        return n

    first = await once.options(job_id="invoice-42").enqueue(1)
    second = await once.options(job_id="invoice-42").enqueue(2)
    assert first.id == second.id == "invoice-42"
    assert second.args == ([1], {})
    await app.work(burst=True)
    third = await once.options(job_id="invoice-42").enqueue(3)
    assert third.status is JobState.COMPLETED
    assert third.result == 1
    assert runs == [1]


async def test_enqueue_many_writes_all_jobs_in_one_step(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def square(n: int) -> int:
        return n * n

    jobs = await app.enqueue_many([square.call(n) for n in range(100)])
    assert len({j.id for j in jobs}) == 100
    counts = await app.jobs.counts()
    assert counts["default"][JobState.WAITING] == 100
    await app.work(burst=True, concurrency=20)
    assert [await j.wait(5) for j in jobs] == [n * n for n in range(100)]


async def test_a_busy_worker_runs_each_job_once_and_records_every_outcome(
    make_app: AppFactory,
) -> None:
    """At concurrency 50, where a store that gains from it keeps two exchanges in flight
    (Redis, PostgreSQL), each job runs once, or twice when retried, and every outcome
    lands: completions, retries and failures, carried by either exchange."""
    app = make_app()
    runs: Counter[int] = Counter()

    @app.task(retries=1, backoff=Backoff.fixed(0))
    async def work(n: int) -> int:
        runs[n] += 1
        await asyncio.sleep(0)
        if n % 10 == 0 and current_job().attempt == 1:
            raise ValueError("try again")
        if n % 25 == 1:
            raise NonRetryableError("no")
        return n

    await app.enqueue_many([work.call(n) for n in range(400)])
    stats = await app.work(burst=True, concurrency=50)
    failed = sum(1 for n in range(400) if n % 25 == 1)
    assert runs == Counter({n: 2 if n % 10 == 0 else 1 for n in range(400)})
    assert (stats.completed, stats.retried, stats.failed) == (400 - failed, 40, failed)
    counts = (await app.jobs.counts())["default"]
    assert counts[JobState.COMPLETED] == 400 - failed
    assert counts[JobState.FAILED] == failed
    assert counts[JobState.WAITING] == counts[JobState.ACTIVE] == 0


async def test_bad_input_at_enqueue_raises_typed_errors_and_writes_nothing(
    make_app: AppFactory,
) -> None:
    app = make_app(max_payload_bytes=1024)

    @app.task
    async def take(value: object) -> None:
        return None

    @app.task
    async def pair(a: int, b: int) -> None:
        return None

    with pytest.raises(SerializationError):
        await app.enqueue_many([take.call(1), take.call(object())])
    with pytest.raises(PayloadTooLargeError):
        await app.enqueue_many([take.call(1), take.call("x" * 2000)])
    with pytest.raises(InvalidArgumentsError):
        await pair.enqueue(1)  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentsError):
        await pair.enqueue(1, 2, c=3)  # type: ignore[call-arg]
    counts = await app.jobs.counts()
    assert sum(sum(by_state.values()) for by_state in counts.values()) == 0


async def test_failing_job_is_retried_then_fails_with_its_error(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.task(retries=2, backoff=0)
    async def flaky() -> None:
        attempts.append(current_job().attempt)
        raise ValueError("upstream said no")

    job = await flaky.enqueue()
    stats = await app.work(burst=True)
    assert attempts == [1, 2, 3]
    assert (stats.retried, stats.failed) == (2, 1)
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.attempts == 3
    assert job.error is not None
    assert job.error.type == "ValueError"
    assert job.error.message == "upstream said no"
    assert job.error.traceback is not None and "upstream said no" in job.error.traceback
    with pytest.raises(JobFailedError) as raised:
        await job.wait(timeout=1)
    assert raised.value.error_type == "ValueError"


async def test_retry_waits_for_its_backoff(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retries=1, backoff=Backoff.fixed(30))
    async def flaky() -> None:
        raise ValueError("later")

    job = await flaky.enqueue()
    await app.work(burst=True)
    await job.refresh()
    assert job.status is JobState.SCHEDULED
    assert job.attempts == 1
    assert job.scheduled_for > datetime.now(UTC) + timedelta(seconds=25)


async def test_non_retryable_errors_fail_at_once(make_app: AppFactory) -> None:
    app = make_app()

    class BadRecord(Exception):
        pass

    @app.task(retries=5, backoff=0, non_retryable=[BadRecord])
    async def strict(kind: str) -> None:
        if kind == "declared":
            raise BadRecord("row 7 has no amount")
        raise NonRetryableError("gave up")

    declared = await strict.enqueue("declared")
    builtin = await strict.enqueue("builtin")
    await app.work(burst=True)
    for job in (declared, builtin):
        await job.refresh()
        assert job.status is JobState.FAILED
        assert job.attempts == 1


async def test_retry_exception_sets_its_own_delay(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retries=3, backoff=0)
    async def later() -> None:
        raise Retry(delay=60)

    job = await later.enqueue()
    await app.work(burst=True)
    await job.refresh()
    assert job.status is JobState.SCHEDULED
    assert job.scheduled_for > datetime.now(UTC) + timedelta(seconds=50)


async def test_timeout_cancels_the_attempt_and_counts_as_a_failure(
    make_app: AppFactory,
) -> None:
    app = make_app()
    finished: list[bool] = []

    @app.task(timeout=0.05, retries=1, backoff=0)
    async def slow() -> None:
        await asyncio.sleep(10)
        finished.append(True)

    job = await slow.enqueue()
    stats = await app.work(burst=True)
    assert (stats.retried, stats.failed) == (1, 1)
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.error is not None and "timeout" in job.error.message
    assert finished == []


async def test_per_call_options_override_task_defaults(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.task(retries=0, backoff=0, queue="reports")
    async def flaky() -> None:
        attempts.append(1)
        raise ValueError("x")

    job = await flaky.options(retries=2, queue="urgent", priority=7).enqueue()
    assert (job.queue, job.priority) == ("urgent", 7)
    await app.work(burst=True, queues=["urgent"])
    assert len(attempts) == 3


async def test_unserializable_result_fails_the_job_clearly(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retries=3, backoff=0)
    async def leaky() -> object:
        return object()

    job = await leaky.enqueue()
    await app.work(burst=True)
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.attempts == 1
    assert job.error is not None and job.error.type == "SerializationError"


async def test_unknown_task_fails_the_job_with_a_clear_error(make_app: AppFactory) -> None:
    producer = make_app()

    @producer.task(name="reports.export")
    async def export() -> None:
        return None

    job = await export.enqueue()
    producer.tasks.clear()
    await producer.work(burst=True, queues=["default"])
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.error is not None and job.error.type == "TaskNotFoundError"


async def test_progress_and_log_lines_are_recorded(make_app: AppFactory) -> None:
    app = make_app(progress_flush_interval=0.01, max_log_lines=3)

    @app.task
    async def import_rows(total: int) -> int:
        ctx = current_job()
        for n in range(1, total + 1):
            ctx.set_progress({"rows": n, "total": total})
            ctx.log(f"row {n}")
            await asyncio.sleep(0)
        return total

    job = await import_rows.enqueue(5)
    await app.work(burst=True)
    await job.refresh()
    assert job.progress == {"rows": 5, "total": 5}
    assert [line.line for line in await job.logs()] == ["row 3", "row 4", "row 5"]


async def test_a_job_id_used_again_after_its_job_went_has_none_of_its_log_lines(
    make_app: AppFactory,
) -> None:
    """A job's log lines go with it, whichever way it goes: removed, or trimmed by count
    retention. (PostgreSQL deletes them in the statement trigger on jobs.)"""
    app = make_app(keep_completed=1)

    @app.task
    async def chatty(n: int) -> int:
        current_job().log(f"run {n}")
        return n

    async def lines(job: Job[Any]) -> list[str]:
        return [line.line for line in await job.logs()]

    first = await chatty.options(job_id="report-1").enqueue(1)
    await app.work(burst=True)
    assert await lines(first) == ["run 1"]
    await app.jobs.remove("report-1")
    again = await chatty.options(job_id="report-1").enqueue(2)
    assert await lines(again) == []
    await app.work(burst=True)
    assert await lines(again) == ["run 2"]
    await chatty.enqueue(3)
    await app.work(burst=True)  # keeps the newest completed job only: report-1 is trimmed
    with pytest.raises(NotFoundError):
        await app.jobs.get("report-1")
    third = await chatty.options(job_id="report-1").enqueue(4)
    assert await lines(third) == []


async def test_progress_is_visible_while_the_job_runs(make_app: AppFactory) -> None:
    app = make_app(progress_flush_interval=0.01)
    halfway = asyncio.Event()
    release = asyncio.Event()

    @app.task
    async def long_import() -> None:
        current_job().set_progress(50)
        halfway.set()
        await release.wait()

    job = await long_import.enqueue()
    worker = asyncio.create_task(app.work(burst=True))
    await halfway.wait()
    for _ in range(200):
        if (await job.refresh()).progress == 50:
            break
        await asyncio.sleep(0.01)
    assert job.progress == 50
    assert job.status is JobState.ACTIVE
    release.set()
    await worker


async def test_a_burst_worker_acknowledges_every_job_that_logged_before_it_returns(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task
    async def chatty(n: int) -> int:
        current_job().log(f"processing {n}")
        current_job().set_progress(100)
        return n

    jobs = await app.enqueue_many([chatty.call(n) for n in range(60)])
    stats = await app.work(burst=True, concurrency=7)
    assert stats.completed == 60
    counts = await app.jobs.counts()
    assert counts["default"][JobState.COMPLETED] == 60
    assert counts["default"][JobState.ACTIVE] == 0
    assert [line.line for line in await jobs[5].logs()] == ["processing 5"]


async def test_a_task_cancelling_its_own_future_fails_like_any_error(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(retries=0)
    async def cancels_itself() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future  # a CancelledError nobody sent to the job

    job = await cancels_itself.enqueue()
    async with asyncio.timeout(30):
        stats = await app.work(burst=True)
    assert stats.failed == 1
    await job.refresh()
    assert job.status is JobState.FAILED
    assert job.error is not None and job.error.type == "CancelledError"
