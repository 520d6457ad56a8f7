"""A worker on a store that gains from it keeps two exchanges in flight: the store
works on one while the worker runs the jobs of the other. It never holds more jobs
than its concurrency, and every job runs once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conveyor import Backoff, Conveyor, current_job
from conveyor.jobs.prefetch import PREFETCH_UP_TO
from conveyor.stores.base import ClaimedJob

JOBS = 400


class _Watched:
    """Wraps a store's exchange: each takes a while, and what it does is counted."""

    def __init__(self, app: Conveyor, in_flight: int) -> None:
        self.store: Any = app.store
        setattr(self.store, "exchanges_in_flight", lambda concurrency: in_flight)
        self.real = self.store.exchange
        setattr(self.store, "exchange", self.exchange)  # a method replaced: mypy refuses =
        self.now = 0
        self.most = 0
        self.held = 0
        """Jobs claimed by the worker whose outcomes the store has not had."""
        self.most_held = 0

    async def exchange(self, *args: Any) -> tuple[list[bool], list[ClaimedJob]]:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.002)  # a store on another machine
            accepted, claimed = await self.real(*args)
        finally:
            self.now -= 1
        self.held += len(claimed) - sum(accepted)
        self.most_held = max(self.most_held, self.held)
        return accepted, claimed


@dataclass
class _App:
    app: Conveyor
    work: Any
    ran: Counter[int] = field(default_factory=Counter)
    """Runs of each job, by its argument."""


@pytest.fixture
async def worker_app() -> AsyncIterator[_App]:
    app = Conveyor("memory://", log_level="WARNING")
    ran: Counter[int] = Counter()

    @app.task
    async def work(n: int) -> None:
        ran[n] += 1
        await asyncio.sleep(0)

    try:
        yield _App(app, work, ran)
    finally:
        await app.close()


@pytest.mark.parametrize("concurrency", [PREFETCH_UP_TO + 1, 16, 50])
async def test_two_exchanges_in_flight_never_claim_past_the_workers_slots(
    worker_app: _App, concurrency: int
) -> None:
    app, work, ran = worker_app.app, worker_app.work, worker_app.ran
    await app.enqueue_many([work.call(n) for n in range(JOBS)])
    watched = _Watched(app, in_flight=2)
    stats = await app.work(burst=True, concurrency=concurrency)
    assert watched.most == 2
    assert watched.most_held <= concurrency
    assert stats.completed == JOBS
    assert ran == Counter(range(JOBS))


@pytest.mark.parametrize(("in_flight", "concurrency"), [(1, 50), (2, PREFETCH_UP_TO)])
async def test_one_exchange_at_a_time_where_the_store_or_claiming_ahead_says_so(
    worker_app: _App, in_flight: int, concurrency: int
) -> None:
    app, work, ran = worker_app.app, worker_app.work, worker_app.ran
    await app.enqueue_many([work.call(n) for n in range(JOBS)])
    watched = _Watched(app, in_flight=in_flight)
    stats = await app.work(burst=True, concurrency=concurrency)
    assert watched.most == 1
    assert stats.completed == JOBS
    assert ran == Counter(range(JOBS))


async def test_a_worker_woken_for_one_job_sends_one_exchange(worker_app: _App) -> None:
    app, work, ran = worker_app.app, worker_app.work, worker_app.ran
    watched = _Watched(app, in_flight=2)
    worker = app.worker(concurrency=16)
    running = asyncio.create_task(worker.run())
    async with asyncio.timeout(10):
        while watched.now == 0:  # the first claim went out and found nothing
            await asyncio.sleep(0.001)
        while watched.now:
            await asyncio.sleep(0.001)
    for n in range(3):
        watched.most = 0
        await work.enqueue(n)
        async with asyncio.timeout(10):
            while ran[n] == 0:
                await asyncio.sleep(0.001)
        assert watched.most == 1  # no second exchange split off while one was out
    worker.stop()
    await running
    assert ran == Counter(range(3))


async def test_an_outcome_that_arrives_after_an_empty_claim_is_sent_before_a_burst_ends() -> None:
    # The first attempt fails just after the worker's second claim came back empty, before
    # the loop reads that answer: the retry's outcome must go out (and the job run again)
    # before the burst ends.
    app = Conveyor("memory://", log_level="WARNING")
    gate = asyncio.Event()
    attempts: list[int] = []

    @app.task(retries=1, backoff=Backoff.fixed(0))
    async def flaky() -> None:
        attempts.append(current_job().attempt)
        if current_job().attempt == 1:
            await gate.wait()
            raise ValueError("first try fails")

    store: Any = app.store
    store.exchanges_in_flight = lambda concurrency: 2  # each exchange a task, read a turn later
    real = store.exchange
    calls = 0

    async def exchange(*args: Any) -> tuple[list[bool], list[ClaimedJob]]:
        nonlocal calls
        calls += 1
        answer: tuple[list[bool], list[ClaimedJob]] = await real(*args)
        if calls == 2:  # the claim made while the first attempt runs: it finds nothing
            gate.set()  # the attempt fails before the worker looks at that answer
        return answer

    setattr(store, "exchange", exchange)  # a method replaced: mypy refuses =
    try:
        await flaky.enqueue()
        stats = await app.work(burst=True, concurrency=10)
        assert (stats.retried, stats.completed) == (1, 1)
        assert attempts == [1, 2]
    finally:
        await app.close()
