"""Queue-level controls on every store: global concurrency, rate, per-task limits, back-off."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor import (
    BadInputError,
    Conveyor,
    JobState,
    ProgrammingError,
    QueueBackoff,
    QueueLimits,
    Task,
    Worker,
)
from conveyor.stores.base import Outcome, now_ms
from tests.conftest import AppFactory

LEASE_MS = 60_000


class Gauge:
    """How many calls run at once in this process, and the most seen."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def hold(self, seconds: float) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


async def _run_until(
    app: Conveyor, done: Callable[[], Awaitable[bool]], workers: int = 3, timeout: float = 20
) -> list[Worker]:
    """Run ``workers`` workers (each of concurrency 5) until ``done()``; then stop them."""
    running = [app.worker(concurrency=5) for _ in range(workers)]
    tasks = [asyncio.create_task(w.run()) for w in running]
    try:
        async with asyncio.timeout(timeout):
            while not await done():
                await asyncio.sleep(0.02)
    finally:
        for worker in running:
            worker.stop()
        await asyncio.gather(*tasks)
    return running


def _completed(app: Conveyor, queue: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await app.jobs.counts()).get(queue, {}).get(JobState.COMPLETED, 0) >= count

    return check


async def _started_ms(app: Conveyor, job_id: str) -> int:
    """When the job's latest attempt started, in the store's milliseconds."""
    record = await app.store.get(job_id)
    assert record is not None and record.started_at is not None
    return record.started_at


async def _declare(app: Conveyor, task: Task[Any, Any], concurrency: int | None) -> None:
    """Declare ``task``'s limit as a worker of code with ``concurrency=`` does."""
    task.concurrency = concurrency
    await app.jobs.controls.declare_tasks([task], ["q"])


async def test_global_concurrency_caps_running_jobs_across_workers(make_app: AppFactory) -> None:
    app = make_app()
    gauge = Gauge()

    @app.task(queue="q")
    async def hold() -> None:
        await gauge.hold(0.03)

    await app.jobs.set_queue_limits("q", concurrency=2)
    await app.enqueue_many([hold.call() for _ in range(12)])
    await _run_until(app, _completed(app, "q", 12))
    assert gauge.most == 2  # three workers of 5 slots each, never more than 2 at once
    assert (await app.jobs.queue_limits("q")).concurrency == 2


async def test_per_task_concurrency_holds_and_other_tasks_pass_the_blocked_ones(
    make_app: AppFactory,
) -> None:
    app = make_app()
    gauge = Gauge()
    release = asyncio.Event()

    @app.task(queue="q", concurrency=1)
    async def exclusive() -> None:
        gauge.now += 1
        gauge.most = max(gauge.most, gauge.now)
        try:
            await release.wait()
        finally:
            gauge.now -= 1

    @app.task(queue="q")
    async def quick() -> None:
        return None

    # The limited task's jobs come first: the others must get past the blocked ones.
    await app.enqueue_many([exclusive.call() for _ in range(5)])
    quick_jobs = await app.enqueue_many([quick.call() for _ in range(8)])

    async def quick_done_then_release() -> bool:
        if all([(await j.refresh()).status is JobState.COMPLETED for j in quick_jobs]):
            release.set()
        return release.is_set() and await _completed(app, "q", 13)()

    await _run_until(app, quick_done_then_release)
    assert gauge.most == 1
    assert (await app.jobs.queue_limits("q")).tasks == {exclusive.name: 1}


async def test_rate_limit_caps_starts_in_every_window(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="rated")
    async def tick() -> None:
        return None

    rate, period_ms = 4, 400
    await app.jobs.set_queue_limits("rated", rate=(rate, period_ms / 1000))
    jobs = await app.enqueue_many([tick.call() for _ in range(12)])
    await _run_until(app, _completed(app, "rated", 12))
    starts = sorted([await _started_ms(app, job.id) for job in jobs])
    busiest = max(sum(1 for t in starts if s <= t < s + period_ms) for s in starts)
    assert busiest == rate  # never more than `rate` starts in any window of `period`


async def test_queue_backoff_stops_the_queue_and_reruns_the_job_uncounted(
    make_app: AppFactory,
) -> None:
    app = make_app()
    calls: list[int] = []

    @app.task(queue="api", retries=0)
    async def call_api(n: int) -> int:
        calls.append(n)
        if n == 0 and calls.count(0) == 1:
            raise QueueBackoff(0.4, "429 Too Many Requests")
        return n

    first = await call_api.enqueue(0)
    raised_at = now_ms()

    async def backed_off() -> bool:
        limits = await app.jobs.queue_limits("api")
        return limits.backoff_until > 0 and (await first.refresh()).status is JobState.WAITING

    await _run_until(app, backed_off, workers=1)
    until = (await app.jobs.queue_limits("api")).backoff_until
    assert raised_at + 400 <= until <= now_ms() + 400
    assert first.attempts == 0  # given back as if never claimed
    second = await call_api.enqueue(1)
    await _run_until(app, _completed(app, "api", 2))
    for job in (first, second):
        await job.refresh()
        assert job.status is JobState.COMPLETED
        assert await _started_ms(app, job.id) >= until
    assert first.attempts == 1  # the backed-off attempt did not count
    assert calls == [0, 0, 1]  # the job given back keeps its place at the head


@pytest.mark.parametrize("task_limit", [None, 2], ids=["no-limit", "task-limit"])
async def test_a_back_off_holds_against_claims_already_under_way(
    make_app: AppFactory, task_limit: int | None
) -> None:
    """A claim that read the queue's limits just before a back-off committed must not take
    the job that back-off gave back (PostgreSQL once did: its claim read the limits and
    picked the jobs in two statements, and the job ran again at once). Claims run without
    a pause while the back-off lands, a few times over, so the two meet mid-claim. Under a
    task limit with one slot left, each claim of two picks per task."""
    app = make_app()

    async def call_api() -> None:
        return None

    async def claim_until(backed_off: asyncio.Event, queue: str, name: str) -> list[str]:
        taken: list[str] = []
        after = 0
        while after < 5:  # a few claims more once the back-off is in
            after += backed_off.is_set()
            _, claimed = await app.store.exchange([], [queue], 2, name, LEASE_MS)
            taken.extend(c.id for c in claimed)
            await asyncio.sleep(0)  # a store that never waits must not starve the rest
        return taken

    for round_ in range(30):
        queue = f"api{round_}"  # a back-off of its own each round
        task = app.task(name=f"call_api_{round_}", queue=queue, concurrency=task_limit)(call_api)
        await app.jobs.controls.declare_tasks([task], [queue])
        keep_ms = app.retention.keep_failed_ms(queue, task.name)
        job = await task.enqueue()
        _, (held,) = await app.store.exchange([], [queue], 1, "holder", LEASE_MS)
        backed_off = asyncio.Event()
        claimers = [asyncio.create_task(claim_until(backed_off, queue, f"c{i}")) for i in range(4)]
        await asyncio.sleep(0.01)
        assert await app.jobs.controls.back_off_job(held, 60, keep_ms) == 1
        backed_off.set()
        taken = [job_id for ids in await asyncio.gather(*claimers) for job_id in ids]
        assert taken == [], f"round {round_}: the given-back job was claimed during its back-off"
        assert (await job.refresh()).status is JobState.WAITING


async def test_backoff_queue_blocks_claims_until_it_ends(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="api")
    async def ping() -> None:
        return None

    await app.jobs.backoff_queue("api", 60)
    await app.jobs.backoff_queue("api", 1)  # a shorter back-off never shortens a longer one
    await ping.enqueue()
    stats = await app.work(burst=True)
    assert stats.completed == 0
    assert (await app.jobs.counts())["api"][JobState.WAITING] == 1
    assert (await app.jobs.queue_limits("api")).backoff_until >= now_ms() + 50_000


async def test_set_queue_limits_replaces_and_clears(make_app: AppFactory) -> None:
    app = make_app()
    await app.jobs.set_queue_limits("q", concurrency=3, rate=(10, 2))
    assert await app.jobs.queue_limits("q") == QueueLimits(concurrency=3, rate=10, period_ms=2000)
    await app.jobs.set_queue_limits("q", rate=(5, 0.5))
    assert await app.jobs.queue_limits("q") == QueueLimits(rate=5, period_ms=500)
    await app.jobs.set_queue_limits("q")
    assert await app.jobs.queue_limits("q") == QueueLimits()
    assert await app.jobs.queue_limits("never-seen") == QueueLimits()


@pytest.mark.parametrize(
    "limits",
    [
        {"concurrency": 0},
        {"concurrency": True},
        {"concurrency": 2.5},
        {"rate": 5},
        {"rate": (0, 1)},
        {"rate": (5, 0)},
        {"rate": (5, math.inf)},
        {"rate": (5, 1, 1)},
    ],
)
async def test_bad_limits_are_rejected_and_write_nothing(
    make_app: AppFactory, limits: dict[str, object]
) -> None:
    app = make_app()
    await app.jobs.set_queue_limits("q", concurrency=7)
    with pytest.raises(BadInputError):
        await app.jobs.set_queue_limits("q", **limits)  # type: ignore[arg-type]
    assert await app.jobs.queue_limits("q") == QueueLimits(concurrency=7)


async def test_bad_backoffs_and_task_limits_are_rejected(make_app: AppFactory) -> None:
    app = make_app()
    for seconds in (-1, math.nan, 10**9):
        with pytest.raises(BadInputError):
            QueueBackoff(seconds)
        with pytest.raises(BadInputError):
            await app.jobs.backoff_queue("q", seconds)
    with pytest.raises(BadInputError):
        await app.jobs.backoff_queue("", 1)
    assert (await app.jobs.queue_limits("q")).backoff_until == 0
    with pytest.raises(ProgrammingError):

        @app.task(concurrency=0)
        async def never() -> None:
            return None


async def test_lifting_a_task_limit_lets_its_held_back_jobs_run(make_app: AppFactory) -> None:
    app = make_app()
    gauge = Gauge()
    release = asyncio.Event()

    @app.task(queue="q", concurrency=1)
    async def exclusive() -> None:
        gauge.now += 1
        gauge.most = max(gauge.most, gauge.now)
        try:
            await release.wait()
        finally:
            gauge.now -= 1

    await app.enqueue_many([exclusive.call() for _ in range(4)])

    async def one_running_then_lift() -> bool:
        # Read the gauge before the counts: a job runs only after its claim is
        # stored, so one seen running is counted ACTIVE by the query that follows
        # (read the other way round, a claim landing during the query made it 0).
        one_ran = gauge.most == 1
        counts = (await app.jobs.counts())["q"]
        if one_ran and exclusive.concurrency is not None:
            assert counts[JobState.ACTIVE] == 1
            exclusive.concurrency = None  # as a worker of the new code declares it
            await app.jobs.controls.declare_tasks([exclusive], ["q"])
        if counts[JobState.ACTIVE] == 4:
            release.set()
        return counts[JobState.COMPLETED] == 4

    await _run_until(app, one_running_then_lift)
    assert gauge.most == 4
    assert (await app.jobs.queue_limits("q")).tasks == {}


async def test_a_task_limit_counts_the_jobs_already_running_when_it_is_set(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="q")
    async def unlimited() -> None:
        return None

    await app.enqueue_many([unlimited.call() for _ in range(4)])
    _, running = await app.store.exchange([], ["q"], 2, "old", LEASE_MS)
    assert len(running) == 2  # claimed while the task had no limit
    await _declare(app, unlimited, 2)  # a rolling deploy: the new code says concurrency=2
    _, more = await app.store.exchange([], ["q"], 5, "new", LEASE_MS)
    assert more == []
    assert (await app.jobs.counts())["q"][JobState.ACTIVE] == 2


async def test_a_task_limit_lifted_then_set_again_counts_the_running_jobs(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="q", concurrency=1)
    async def exclusive() -> None:
        return None

    await app.enqueue_many([exclusive.call() for _ in range(4)])
    await _declare(app, exclusive, 1)
    _, running = await app.store.exchange([], ["q"], 5, "w1", LEASE_MS)
    assert len(running) == 1
    await _declare(app, exclusive, None)
    await _declare(app, exclusive, 1)
    _, more = await app.store.exchange([], ["q"], 5, "w2", LEASE_MS)
    assert more == []
    assert (await app.jobs.counts())["q"][JobState.ACTIVE] == 1


async def test_a_freed_task_slot_goes_to_a_waiting_job_not_to_cancelled_ones(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="q", concurrency=1)
    async def exclusive() -> None:
        return None

    await _declare(app, exclusive, 1)
    first = await exclusive.enqueue()
    _, (held,) = await app.store.exchange([], ["q"], 1, "w1", LEASE_MS)
    blocked = [await exclusive.enqueue() for _ in range(6)]
    _, none = await app.store.exchange([], ["q"], 10, "w2", LEASE_MS)  # held back behind `first`
    assert none == []
    for job in blocked[:5]:
        await app.jobs.cancel(job.id)
    done = Outcome(first.id, held.token, "q", JobState.COMPLETED, now_ms(), result=b"1")
    _, claimed = await app.store.exchange([done], ["q"], 1, "w1", LEASE_MS)
    assert [job.id for job in claimed] == [blocked[5].id]  # the slot `first` freed, at once
