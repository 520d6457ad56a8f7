"""What an operator does and reads beyond the job state machine, on every store.

A job's timeline, bulk retry of failed jobs, promoting a delayed job, a dry
run of a clean, searchable payload fields declared on a task, and what a
worker's heartbeat says (the jobs it runs, its version).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from conveyor import (
    BadInputError,
    ConflictError,
    JobEventKind,
    JobState,
    NotFoundError,
    ProgrammingError,
)
from conveyor.stores.backend import Backend
from conveyor.stores.base import JobStore, NewJob, Outcome, ProgressUpdate
from tests.conformance.conftest import START_MS, manual_clock
from tests.conftest import AppFactory

Q = "ops"
LEASE_MS = 30_000


def job(job_id: str, queue: str = Q, delay: int = 0) -> NewJob:
    return NewJob(job_id, queue, "t", b"[[],{}]", b"{}", 0, START_MS + delay, START_MS, 1)


async def claim(store: JobStore, queue: str = Q) -> dict[str, str]:
    _, claimed = await store.exchange([], [queue], 100, "w", LEASE_MS)
    return {c.id: c.token for c in claimed}


def error(message: str) -> bytes:
    return msgspec.json.encode({"type": "E", "message": message, "traceback": None})


async def test_a_timeline_holds_a_jobs_events_but_progress_oldest_first(backend: Backend) -> None:
    store, clock = backend.jobs, manual_clock(backend)
    await store.enqueue([job("j")])
    token = (await claim(store))["j"]
    await store.update_progress([ProgressUpdate("j", token, b"50")], 10)
    clock.advance(1)
    retry = Outcome("j", token, Q, JobState.WAITING, clock.now_ms(), error=error("one"))
    retry = msgspec.structs.replace(retry, run_at=clock.now_ms())
    assert (await store.exchange([retry], [Q], 0, "w", LEASE_MS))[0] == [True]
    clock.advance(1)
    token = (await claim(store))["j"]
    clock.advance(1)
    failed = Outcome("j", token, Q, JobState.FAILED, clock.now_ms(), error=error("two"))
    assert (await store.exchange([failed], [Q], 0, "w", LEASE_MS))[0] == [True]
    timeline = await store.events_of("j", 10)
    assert [(e.kind, e.at, e.data) for e in timeline] == [
        (JobEventKind.RETRYING, START_MS + 1_000, error("one")),
        (JobEventKind.FAILED, START_MS + 3_000, error("two")),
    ]
    assert [e.kind for e in await store.events_of("j", 1)] == [JobEventKind.FAILED]
    assert await store.events_of("nothing", 10) == []


async def test_bulk_retry_takes_the_longest_failed_first_and_stops_at_its_limit(
    backend: Backend,
) -> None:
    store, clock = backend.jobs, manual_clock(backend)
    await store.enqueue([job(f"j{n}") for n in range(5)] + [job("other", queue="elsewhere")])
    for queue in (Q, "elsewhere"):
        tokens = await claim(store, queue)
        for job_id in sorted(tokens, reverse=True):  # j4 fails first
            clock.advance(1)
            out = Outcome(job_id, tokens[job_id], queue, JobState.FAILED, clock.now_ms())
            await store.exchange([out], [queue], 0, "w", LEASE_MS)
    assert await store.retry_failed(Q, 2, clock.now_ms()) == 2
    failed = await store.list_page(Q, JobState.FAILED, None, 10)
    assert sorted(r.id for r in failed.records) == ["j0", "j1", "j2"]
    assert await store.retry_failed(Q, 10, clock.now_ms()) == 3
    assert await store.retry_failed(Q, 10, clock.now_ms()) == 0
    waiting = await store.list_page(Q, JobState.WAITING, None, 10)
    assert {r.attempts for r in waiting.records} == {0} and len(waiting.records) == 5
    assert [r.id for r in (await store.list_page(None, JobState.FAILED, None, 10)).records] == [
        "other"
    ]


async def test_promote_runs_a_delayed_job_now(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def remind(n: int) -> int:
        return n

    later = await remind.options(delay=3600).enqueue(1)
    promoted = await app.jobs.promote(later.id)
    assert promoted.status is JobState.WAITING
    assert promoted.scheduled_for < later.scheduled_for
    assert (await app.work(burst=True)).completed == 1
    with pytest.raises(ConflictError):
        await app.jobs.promote(later.id)
    with pytest.raises(NotFoundError):
        await app.jobs.promote("no-such-job")


async def test_a_dry_run_clean_counts_what_it_would_delete(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="dry")
    async def noop(n: int) -> None:
        return None

    await app.enqueue_many([noop.call(n) for n in range(4)])
    await app.work(burst=True)
    await asyncio.sleep(0.002)  # older than now
    assert await app.jobs.clean("dry", "completed", dry_run=True) == 4
    assert await app.jobs.clean("dry", "completed", limit=3, dry_run=True) == 3
    assert await app.jobs.clean("dry", "completed", older_than=3600, dry_run=True) == 0
    assert (await app.jobs.counts())["dry"][JobState.COMPLETED] == 4
    assert await app.jobs.clean("dry", "completed", limit=3) == 3


async def test_a_dry_run_counts_what_clean_deletes_at_the_edge_too(backend: Backend) -> None:
    store, clock = backend.jobs, manual_clock(backend)
    await store.enqueue([job("edge")])
    token = (await claim(store))["edge"]
    finished_at = clock.now_ms()
    done = Outcome("edge", token, Q, JobState.COMPLETED, finished_at)
    assert (await store.exchange([done], [Q], 0, "w", LEASE_MS))[0] == [True]
    before = finished_at  # "finished before" is strictly before
    assert await store.count_clean(Q, JobState.COMPLETED, before, 10) == 0
    assert (await store.clean(Q, JobState.COMPLETED, before, 10)).removed == 0
    assert await store.count_clean(Q, JobState.COMPLETED, before + 1, 10) == 1
    assert await store.count_clean(Q, JobState.WAITING, START_MS + 1, 10) == 0
    assert (await store.clean(Q, JobState.COMPLETED, before + 1, 10)).removed == 1


@dataclass
class Order:
    id: str
    total: int


async def test_a_tasks_searchable_fields_find_its_jobs(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="orders", search=["customer_id", "order.id", "meta.region"])
    async def ship(customer_id: int, order: Order, meta: dict[str, Any] | None = None) -> None:
        return None

    first = await ship.enqueue(42, Order("A-1", 10), {"region": "eu"})
    second = await ship.enqueue(7, Order("A-2", 20))
    third = await ship.enqueue(customer_id=42, order=Order("A-3", 30))

    async def found(**criteria: Any) -> list[str]:
        return [job.id for job in (await app.jobs.search(**criteria)).jobs]

    assert await found(field=("customer_id", 42)) == [third.id, first.id]
    assert await found(field=("customer_id", "42")) == [third.id, first.id]
    assert await found(field=("order.id", "A-2")) == [second.id]
    assert await found(field=("order.id", "a-2")) == []  # text is exact
    assert await found(field=("meta.region", "eu")) == [first.id]
    assert await found(field=("customer_id", 4)) == []
    assert await found(task=ship, field=("customer_id", 7)) == [second.id]
    assert await found(task="other.task", field=("customer_id", 7)) == []
    assert await found(job_id=second.id) == [second.id]
    assert await found(id_prefix=second.id[:30], queue="orders") == [second.id]


async def test_searching_by_an_error_finds_failed_jobs(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def deliver(n: int) -> None:
        if n % 2:
            raise ConnectionError(f"mailbox {n} unreachable")

    await app.enqueue_many([deliver.call(n) for n in range(4)])
    await app.work(burst=True)
    by_type = await app.jobs.search(error_type="ConnectionError")
    by_word = await app.jobs.search(error_word="Unreachable", state="failed")
    assert len(by_type.jobs) == len(by_word.jobs) == 2
    assert {job.args[0][0] for job in by_type.jobs} == {1, 3}


async def test_bad_page_and_search_arguments_are_refused(make_app: AppFactory) -> None:
    app = make_app()
    for bad in (0, 201, True):
        with pytest.raises(BadInputError):
            await app.jobs.list_page("waiting", limit=bad)
    with pytest.raises(BadInputError):
        await app.jobs.list_page("waiting", cursor="!!")
    with pytest.raises(BadInputError):
        await app.jobs.list_page("no-such-state")
    with pytest.raises(BadInputError):
        await app.jobs.search(queue="q", state="waiting")  # no criterion
    with pytest.raises(BadInputError):
        await app.jobs.search(error_word="a b")
    with pytest.raises(BadInputError):
        await app.jobs.search(field=("customer_id", [1, 2]))
    with pytest.raises(BadInputError):
        await app.jobs.search(field=("customer_id", "x" * 300))
    with pytest.raises(BadInputError):
        await app.jobs.retry_failed("q", limit=0)


def test_a_search_path_must_name_a_parameter(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(ProgrammingError):

        @app.task(search=["customer"])
        async def ship(customer_id: int) -> None:
            return None

    with pytest.raises(ProgrammingError):
        app.register_task(ship_fn, search="customer_id")


async def ship_fn(customer_id: int) -> None:
    return None


async def test_a_heartbeat_names_the_jobs_its_worker_runs(make_app: AppFactory) -> None:
    app = make_app(sweep_interval=0.05)
    release = asyncio.Event()

    @app.task
    async def hold(n: int) -> None:
        await release.wait()

    jobs = await app.enqueue_many([hold.call(n) for n in range(3)])
    worker = app.worker(concurrency=5)
    running = asyncio.create_task(worker.run())
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 10
        while seen != {j.id for j in jobs} and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            for info in await app.jobs.workers():
                seen = set(info.running)
        assert seen == {j.id for j in jobs}
        (info,) = await app.jobs.workers()
        assert info.id == worker.id and info.version
    finally:
        release.set()
        worker.stop()
        await running
