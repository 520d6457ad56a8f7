"""One library, one measurement, one process: the child side of ``bench.redis_peers``.

    python -m bench.redis_peers_runners LIBRARY ACTION --url redis://127.0.0.1:PORT/0 \
        [--jobs N] [--concurrency C] [--rate R] [--seconds S] [--timeout T]

LIBRARY is one of ``conveyor arq saq rq taskiq bullmq-py``; ACTION one of:

- ``enqueue-one``: time N sequential enqueues of one job each (one awaited call,
  or one plain call for RQ); then check the library sees N jobs waiting.
- ``enqueue-bulk``: time one batch call that enqueues N jobs, where the library has
  one; otherwise report why not.
- ``drain``: enqueue N jobs untimed, then time one in-process worker with
  concurrency C from just before it is created until all N are done (see
  ``Runner.drain`` for what "done" means per library); check all N ran.
- ``serve``: run a worker with concurrency C until N job bodies have run; every
  body records ``perf_counter() - ts`` with ``ts`` taken by the producer.
- ``produce``: enqueue N jobs at a fixed rate R per second, each carrying
  ``ts = perf_counter()`` taken just before its enqueue call.
- ``waiting-memory``: bulk-add N jobs that each carry a ``PAD``-character string
  argument, in batches of 10,000, and leave them waiting (the parent reads Redis'
  memory before and after this process); where the library has no batch call,
  report why not.

``time.perf_counter()`` is CLOCK_MONOTONIC on Linux, one clock for every process on
the machine, so the producer's and the worker's readings can be subtracted.

The process prints progress to stderr and its result as one line
``RESULT {json}`` on stdout. Peers run from their own virtualenv (their redis-py
pins differ from conveyor's), so each runner imports its library lazily.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

QUEUE = "bench"  # queue name wherever the library takes one
PAD = 400  # characters of the string argument each job carries in waiting-memory
SETUP_CHUNK = 200  # concurrent enqueues while filling a queue untimed


class BenchError(RuntimeError):
    """A run did not do what it was asked to (wrong counts, timeout)."""


# -- what the job bodies and finish hooks saw in this process ------------------------


class Tally:
    """Counts job bodies and finish hooks; records pickup latencies.

    Bodies are counted per distinct job (by its argument ``i``) as well as in total, so
    a job that runs twice shows up as a duplicate instead of standing in for another.
    """

    def __init__(self) -> None:
        self.ran = 0
        self.seen: set[int] = set()
        self.finished = 0
        self._finished_keys: set[Any] = set()
        self.latencies: list[float] = []
        self._target = 0
        self._ran_all: asyncio.Event | None = None
        self._finished_all: asyncio.Event | None = None

    def arm(self, target: int) -> None:
        """Expect ``target`` jobs; call inside the running event loop."""
        self.ran = self.finished = 0
        self.seen = set()
        self._finished_keys = set()
        self.latencies = []
        self._target = target
        self._ran_all = asyncio.Event()
        self._finished_all = asyncio.Event()

    def body(self, i: int, ts: float) -> None:
        """Every job body calls this first thing."""
        if ts:
            self.latencies.append(time.perf_counter() - ts)
        self.ran += 1
        self.seen.add(i)
        if self._ran_all is not None and len(self.seen) >= self._target:
            self._ran_all.set()

    @property
    def duplicates(self) -> int:
        return self.ran - len(self.seen)

    def finish(self, key: Any = None, count: int = 1) -> None:
        """A library's own "this job is finished" hook calls this, with the job's id
        where the hook has one (then a job finished twice counts once)."""
        if key is None:
            self.finished += count
        else:
            self._finished_keys.add(key)
            self.finished = len(self._finished_keys)
        if self._finished_all is not None and self.finished >= self._target:
            self._finished_all.set()

    async def wait_ran(self, timeout: float) -> None:
        await self._wait(self._ran_all, "job bodies run", self.ran, timeout)

    async def wait_finished(self, timeout: float) -> None:
        await self._wait(self._finished_all, "jobs finished", self.finished, timeout)

    async def _wait(self, event: asyncio.Event | None, what: str, seen: int, t: float) -> None:
        assert event is not None, "arm() first"
        try:
            await asyncio.wait_for(event.wait(), t)
        except TimeoutError:
            raise BenchError(
                f"timeout after {t:.0f}s: {self.ran} bodies ran, {self.finished} finished,"
                f" expected {self._target} {what}"
            ) from None


TALLY = Tally()


def job_body(i: int, ts: float) -> None:
    TALLY.body(i, ts)


def rq_noop(i: int, ts: float = 0.0) -> None:
    """RQ imports its jobs' functions by dotted path, so this one is module level."""
    job_body(i, ts)


# -- one runner per library ------------------------------------------------------------


@dataclass
class Config:
    url: str
    jobs: int
    concurrency: int
    rate: float
    seconds: float
    timeout: float


class Runner:
    """Each library's enqueue, bulk enqueue, worker and counts, on one Redis URL."""

    name: ClassVar[str]
    bulk_note: ClassVar[str] = ""  # non-empty: no batch enqueue API, and why
    abandoned = False  # True: a worker would not stop; exit without closing anything

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        raise NotImplementedError

    async def enqueue_bulk(self, n: int, start: int = 0) -> None:
        """Jobs ``start`` .. ``start + n - 1`` in one batch call."""
        raise NotImplementedError

    async def enqueue_bulk_padded(self, n: int, start: int, pad: str) -> None:
        """As ``enqueue_bulk``, each job also carrying the string ``pad``."""
        raise NotImplementedError

    async def waiting(self) -> int:
        """Jobs waiting to be picked up, as the library counts them."""
        raise NotImplementedError

    async def unfinished(self) -> int:
        """Jobs enqueued but not finished (waiting or active), as the library counts them."""
        raise NotImplementedError

    async def fill(self, n: int) -> None:
        """Enqueue ``n`` jobs, untimed: bulk if there is a batch API, else concurrently."""
        if not self.bulk_note:
            for start in range(0, n, 10_000):
                await self.enqueue_bulk(min(10_000, n - start), start)
            return
        for start in range(0, n, SETUP_CHUNK):
            stop = min(n, start + SETUP_CHUNK)
            await asyncio.gather(*(self.enqueue(i) for i in range(start, stop)))

    async def drain(self, n: int, c: int) -> float:
        """Seconds from just before a worker is created until all ``n`` jobs are done."""
        raise NotImplementedError

    async def serve(self, n: int, c: int) -> None:
        """Run a worker until ``n`` job bodies have run; say READY once it is up."""
        raise NotImplementedError


def ready() -> None:
    print("READY", flush=True)


class ConveyorRunner(Runner):
    name = "conveyor"

    async def open(self) -> None:
        from conveyor import Conveyor

        self.app = Conveyor(self.cfg.url, log_level="WARNING")

        @self.app.task(name="bench.noop")
        async def noop(i: int, ts: float = 0.0, pad: str = "") -> None:
            job_body(i, ts)

        self.noop = noop
        await self.app.open()

    async def close(self) -> None:
        await self.app.close()

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        await self.noop.enqueue(i, ts)

    async def enqueue_bulk(self, n: int, start: int = 0) -> None:
        await self.app.enqueue_many([self.noop.call(i) for i in range(start, start + n)])

    async def enqueue_bulk_padded(self, n: int, start: int, pad: str) -> None:
        calls = [self.noop.call(i, 0.0, pad) for i in range(start, start + n)]
        await self.app.enqueue_many(calls)

    async def _counts(self) -> dict[Any, int]:
        counts = await self.app.jobs.counts()
        return dict(counts.get("default", {}))

    async def waiting(self) -> int:
        from conveyor import JobState

        return (await self._counts()).get(JobState.WAITING, 0)

    async def unfinished(self) -> int:
        from conveyor import JobState

        counts = await self._counts()
        return sum(counts.get(s, 0) for s in (JobState.WAITING, JobState.ACTIVE))

    async def drain(self, n: int, c: int) -> float:
        # Burst mode: ends after the last outcome is stored and the worker has shut down.
        start = time.perf_counter()
        stats = await self.app.work(burst=True, concurrency=c)
        elapsed = time.perf_counter() - start
        TALLY.finish(count=stats.completed)
        if stats.failed or stats.retried or stats.lost:
            raise BenchError(f"conveyor: unexpected worker stats {stats}")
        return elapsed

    async def serve(self, n: int, c: int) -> None:
        worker = self.app.worker(concurrency=c)
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(1.0)  # let it connect and do its first poll
        ready()
        try:
            await TALLY.wait_ran(self.cfg.timeout)
        finally:
            worker.stop()
            await task


class ArqRunner(Runner):
    """arq at its defaults: the worker polls its queue every poll_delay = 0.5 s and reads
    up to queue_read_limit = max(5 * max_jobs, 100) job ids per poll, which caps a busy
    worker at about that many jobs per 0.5 s."""

    name = "arq"
    bulk_note = "no batch enqueue API (ArqRedis.enqueue_job only)"
    poll_delay: ClassVar[float | None] = None  # None: arq's default

    async def open(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.settings = RedisSettings.from_dsn(self.cfg.url)
        self.pool = await create_pool(self.settings)

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        await self.pool.enqueue_job("noop", i, ts)

    async def waiting(self) -> int:
        from arq.constants import default_queue_name

        return int(await self.pool.zcard(default_queue_name))

    async def unfinished(self) -> int:
        return await self.waiting()  # a job leaves arq's queue zset when it finishes

    def _worker(self, c: int, burst: bool) -> Any:
        from arq.worker import Worker, func

        async def noop(ctx: dict[str, Any], i: int, ts: float = 0.0) -> None:
            job_body(i, ts)

        async def after_job_end(ctx: dict[str, Any]) -> None:
            TALLY.finish(ctx["job_id"])

        return Worker(
            functions=[func(noop, name="noop")],
            redis_settings=self.settings,
            max_jobs=c,
            burst=burst,
            handle_signals=False,
            after_job_end=after_job_end,  # runs after the result is stored
            **({} if self.poll_delay is None else {"poll_delay": self.poll_delay}),
        )

    async def drain(self, n: int, c: int) -> float:
        # Ends at the Nth after_job_end hook (result stored, job removed from the queue);
        # waiting for burst mode's own exit would add up to poll_delay (0.5 s).
        start = time.perf_counter()
        worker = self._worker(c, burst=True)
        task = asyncio.create_task(worker.async_run())
        await TALLY.wait_finished(self.cfg.timeout)
        elapsed = time.perf_counter() - start
        await task
        await worker.close()
        if worker.jobs_complete != n or worker.jobs_failed or worker.jobs_retried:
            raise BenchError(
                f"arq: complete={worker.jobs_complete} failed={worker.jobs_failed}"
                f" retried={worker.jobs_retried}, expected {n} complete"
            )
        return elapsed

    async def serve(self, n: int, c: int) -> None:
        worker = self._worker(c, burst=False)
        task = asyncio.create_task(worker.async_run())
        await asyncio.sleep(1.0)
        ready()
        # Wait for after_job_end too: arq's close() cancels the tasks of unfinished jobs.
        await TALLY.wait_finished(self.cfg.timeout)
        await worker.close()  # cancels the polling main task
        await asyncio.gather(task, return_exceptions=True)


class Arq50msRunner(ArqRunner):
    """arq with poll_delay = 0.05 s (conveyor's idle poll interval); lower gained nothing."""

    name = "arq-50ms"
    poll_delay = 0.05


class SaqRunner(Runner):
    name = "saq"
    bulk_note = "no batch enqueue API (Queue.map enqueues one by one and waits for results)"

    async def open(self) -> None:
        from saq import Queue

        self.queue = Queue.from_url(self.cfg.url, name=QUEUE)
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        await self.queue.enqueue("noop", i=i, ts=ts)

    async def waiting(self) -> int:
        return int(await self.queue.count("queued"))

    async def unfinished(self) -> int:
        return int(await self.queue.count("incomplete"))

    def _worker(self, c: int) -> Any:
        from saq import Status, Worker

        async def noop(ctx: dict[str, Any], *, i: int, ts: float = 0.0) -> None:
            job_body(i, ts)

        async def after_process(ctx: dict[str, Any]) -> None:
            if ctx["job"].status == Status.COMPLETE:
                TALLY.finish(ctx["job"].id)

        # after_process runs after job.finish() has stored the outcome. Burst mode is not
        # used: it only ends after a dequeue has waited dequeue_timeout for nothing.
        return Worker(self.queue, functions=[("noop", noop)], concurrency=c,
                      after_process=[after_process])  # fmt: skip

    async def drain(self, n: int, c: int) -> float:
        start = time.perf_counter()
        worker = self._worker(c)
        task = asyncio.create_task(worker.start())
        await TALLY.wait_finished(self.cfg.timeout)
        elapsed = time.perf_counter() - start
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)
        return elapsed

    async def serve(self, n: int, c: int) -> None:
        worker = self._worker(c)
        task = asyncio.create_task(worker.start())
        await asyncio.sleep(1.0)
        ready()
        try:
            await TALLY.wait_ran(self.cfg.timeout)
        finally:
            await worker.stop()
            await asyncio.gather(task, return_exceptions=True)


class RqRunner(Runner):
    """RQ is synchronous: its calls block the (otherwise idle) event loop of this process."""

    name = "rq"

    async def open(self) -> None:
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(self.cfg.url)
        self.queue = Queue(QUEUE, connection=self.redis)

    async def close(self) -> None:
        self.redis.close()

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        self.queue.enqueue(rq_noop, i, ts)

    async def enqueue_bulk(self, n: int, start: int = 0) -> None:
        from rq import Queue

        calls = [Queue.prepare_data(rq_noop, (i,)) for i in range(start, start + n)]
        self.queue.enqueue_many(calls)

    async def waiting(self) -> int:
        return int(self.queue.count)

    async def unfinished(self) -> int:
        return int(self.queue.count) + int(self.queue.started_job_registry.count)

    def _worker(self) -> Any:
        from rq import SimpleWorker

        return SimpleWorker([self.queue], connection=self.redis)

    async def drain(self, n: int, c: int) -> float:
        # SimpleWorker runs jobs in its own process, one at a time: c does not apply.
        # Burst mode returns as soon as a non-blocking dequeue finds the queue empty.
        start = time.perf_counter()
        self._worker().work(burst=True, logging_level="WARNING")
        elapsed = time.perf_counter() - start
        finished = self.queue.finished_job_registry.count
        TALLY.finish(count=finished)
        failed = self.queue.failed_job_registry.count
        if failed:
            raise BenchError(f"rq: {failed} failed jobs")
        return elapsed

    async def serve(self, n: int, c: int) -> None:
        ready()  # SimpleWorker.work blocks this process from here on
        self._worker().work(burst=False, max_jobs=n, max_idle_time=30, logging_level="WARNING")


class TaskiqRunner(Runner):
    name = "taskiq"
    bulk_note = "no batch enqueue API (one kiq() per task)"

    async def open(self) -> None:
        from taskiq_redis import RedisStreamBroker

        class CountingStreamBroker(RedisStreamBroker):  # type: ignore[misc]
            """Counts a task as finished once its stream entry is acknowledged."""

            def _ack_generator(self, *args: Any, **kwargs: Any) -> Any:
                ack = super()._ack_generator(*args, **kwargs)

                async def ack_and_count() -> None:
                    await ack()
                    TALLY.finish()

                return ack_and_count

        # RedisStreamBroker: consumer group + XACK after the task (at-least-once), the
        # taskiq-redis broker that does not lose a task when a worker dies; its defaults.
        self.broker = CountingStreamBroker(self.cfg.url, queue_name=QUEUE)

        @self.broker.task(task_name="noop")
        async def noop(i: int, ts: float = 0.0) -> None:
            job_body(i, ts)

        self.noop = noop
        await self.broker.startup()  # creates the consumer group, so no entry is missed

    async def close(self) -> None:
        await self.broker.shutdown()

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        await self.noop.kiq(i, ts)

    async def _group(self) -> dict[str, Any]:
        from redis.asyncio import Redis

        async with Redis(connection_pool=self.broker.connection_pool) as conn:
            groups = await conn.xinfo_groups(QUEUE)
        return {str(k): v for k, v in groups[0].items()} if groups else {}

    async def waiting(self) -> int:
        return int((await self._group()).get("lag") or 0)

    async def unfinished(self) -> int:
        group = await self._group()
        return int(group.get("lag") or 0) + int(group.get("pending") or 0)

    def _start_worker(self, c: int) -> asyncio.Task[None]:
        from concurrent.futures import ThreadPoolExecutor

        from taskiq.receiver import Receiver

        # What `taskiq worker --workers 1 --max-async-tasks C` runs in its one worker
        # process (other options at their defaults), here in this process; setting
        # self.finish stops it the way the CLI's shutdown event does.
        self.broker.is_worker_process = True
        self.finish = asyncio.Event()
        self.executor = ThreadPoolExecutor()  # for sync tasks; the no-op task is async
        receiver = Receiver(
            broker=self.broker, executor=self.executor, max_async_tasks=c, run_startup=False
        )
        return asyncio.create_task(receiver.listen(self.finish))

    async def _stop_worker(self, task: asyncio.Task[None]) -> None:
        self.finish.set()
        done, _ = await asyncio.wait([task], timeout=10)
        if not done:
            # Seen here in about half the runs, after all the work was done: the stream
            # listener's cancelled XREADGROUP never finishes. The measurement is complete,
            # so the process reports it and exits without waiting any longer.
            print("  taskiq: receiver still stopping after 10 s; exiting", file=sys.stderr)
            self.abandoned = True
        self.executor.shutdown(wait=False)

    async def drain(self, n: int, c: int) -> float:
        start = time.perf_counter()
        task = self._start_worker(c)
        await TALLY.wait_finished(self.cfg.timeout)
        elapsed = time.perf_counter() - start
        await self._stop_worker(task)
        return elapsed

    async def serve(self, n: int, c: int) -> None:
        task = self._start_worker(c)
        await asyncio.sleep(1.0)
        ready()
        try:
            await TALLY.wait_ran(self.cfg.timeout)
        finally:
            await self._stop_worker(task)


class BullmqPyRunner(Runner):
    name = "bullmq-py"

    async def open(self) -> None:
        from bullmq import Queue

        self.queue = Queue(QUEUE, {"connection": self.cfg.url})

    async def close(self) -> None:
        await self.queue.close()

    async def enqueue(self, i: int, ts: float = 0.0) -> None:
        await self.queue.add("noop", {"i": i, "ts": ts})

    async def enqueue_bulk(self, n: int, start: int = 0) -> None:
        jobs = [{"name": "noop", "data": {"i": i, "ts": 0.0}} for i in range(start, start + n)]
        await self.queue.addBulk(jobs)

    async def enqueue_bulk_padded(self, n: int, start: int, pad: str) -> None:
        data = ({"i": i, "ts": 0.0, "pad": pad} for i in range(start, start + n))
        await self.queue.addBulk([{"name": "noop", "data": d} for d in data])

    async def waiting(self) -> int:
        return int((await self.queue.getJobCounts("wait"))["wait"])

    async def unfinished(self) -> int:
        counts = await self.queue.getJobCounts("wait", "active", "delayed")
        return sum(int(v) for v in counts.values())

    def _worker(self, c: int) -> Any:
        from bullmq import Worker

        async def process(job: Any, token: str) -> None:
            job_body(job.data["i"], job.data.get("ts", 0.0))

        # The worker starts itself when created (autorun). "completed" is emitted after
        # moveToCompleted has stored the result.
        worker = Worker(QUEUE, process, {"connection": self.cfg.url, "concurrency": c})
        worker.on("completed", lambda job, result: TALLY.finish(job.id))
        return worker

    async def drain(self, n: int, c: int) -> float:
        start = time.perf_counter()
        worker = self._worker(c)
        await TALLY.wait_finished(self.cfg.timeout)
        elapsed = time.perf_counter() - start
        await worker.close()
        return elapsed

    async def serve(self, n: int, c: int) -> None:
        worker = self._worker(c)
        await asyncio.sleep(1.0)
        ready()
        try:
            await TALLY.wait_ran(self.cfg.timeout)
        finally:
            await worker.close()


RUNNERS: dict[str, type[Runner]] = {
    r.name: r
    for r in (
        ConveyorRunner,
        ArqRunner,
        Arq50msRunner,
        SaqRunner,
        RqRunner,
        TaskiqRunner,
        BullmqPyRunner,
    )
}


# -- actions ---------------------------------------------------------------------------


async def act(runner: Runner, action: str, cfg: Config) -> dict[str, Any]:
    n, c = cfg.jobs, cfg.concurrency
    if action == "enqueue-one":
        start = time.perf_counter()
        for i in range(n):
            await runner.enqueue(i)
        elapsed = time.perf_counter() - start
        await expect_waiting(runner, n)
        return {"seconds": elapsed, "jobs": n}

    if action == "enqueue-bulk":
        if runner.bulk_note:
            return {"na": runner.bulk_note}
        start = time.perf_counter()
        await runner.enqueue_bulk(n)
        elapsed = time.perf_counter() - start
        await expect_waiting(runner, n)
        return {"seconds": elapsed, "jobs": n}

    if action == "drain":
        fill_start = time.perf_counter()
        await runner.fill(n)
        await expect_waiting(runner, n)
        fill_s = time.perf_counter() - fill_start
        print(f"  {runner.name}: {n:,} jobs enqueued in {fill_s:.1f}s (untimed)", file=sys.stderr)
        gc.collect()
        TALLY.arm(n)
        elapsed = await runner.drain(n, c)
        left = await runner.unfinished()
        if len(TALLY.seen) != n or TALLY.finished < n:
            raise BenchError(
                f"{runner.name} drain: {len(TALLY.seen)} distinct jobs ran, {TALLY.finished}"
                f" finished; expected {n} of each"
            )
        # Reported, not fatal: jobs run more than once, and jobs the library still counts
        # as unfinished after every job has run and the worker has stopped.
        return {
            "seconds": elapsed,
            "jobs": n,
            "ran": TALLY.ran,
            "duplicates": TALLY.duplicates,
            "unfinished": left,
        }

    if action == "serve":
        TALLY.arm(n)
        await runner.serve(n, c)
        if len(TALLY.seen) != n:
            raise BenchError(f"{runner.name} serve: {len(TALLY.seen)} jobs ran, expected {n}")
        return {"jobs": n, "latency": summarize(TALLY.latencies), "duplicates": TALLY.duplicates}

    if action == "produce":
        return await produce(runner, n, cfg.rate)

    if action == "waiting-memory":
        try:
            for start in range(0, n, 10_000):
                await runner.enqueue_bulk_padded(min(10_000, n - start), start, "x" * PAD)
        except NotImplementedError:
            return {"na": runner.bulk_note or "no padded batch enqueue in this runner"}
        await expect_waiting(runner, n)
        return {"jobs": n, "pad": PAD}

    raise BenchError(f"unknown action {action!r}")


async def expect_waiting(runner: Runner, n: int) -> None:
    waiting = await runner.waiting()
    if waiting != n:
        raise BenchError(f"{runner.name}: {waiting} jobs waiting, expected {n}")


async def produce(runner: Runner, n: int, rate: float) -> dict[str, Any]:
    """Enqueue job k at start + k / rate (no catch-up bursts beyond that schedule)."""
    start = time.perf_counter()
    late = 0.0
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        await runner.enqueue(i, time.perf_counter())
    elapsed = time.perf_counter() - start
    return {"jobs": n, "seconds": elapsed, "rate": n / elapsed, "max_late_s": late}


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": ordered[-1]}


# -- entry point -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[str, str, Config]:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_peers_runners")
    parser.add_argument("library", choices=sorted(RUNNERS))
    parser.add_argument(
        "action",
        choices=["enqueue-one", "enqueue-bulk", "drain", "serve", "produce", "waiting-memory"],
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", "-n", type=int, default=20_000)
    parser.add_argument("--concurrency", "-c", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0, help="produce: jobs per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="unused here; for symmetry")
    parser.add_argument("--timeout", type=float, default=300.0, help="waits give up after this")
    ns = parser.parse_args(argv)
    cfg = Config(ns.url, ns.jobs, ns.concurrency, ns.rate, ns.seconds, ns.timeout)
    return ns.library, ns.action, cfg


async def amain(library: str, action: str, cfg: Config) -> None:
    runner = RUNNERS[library](cfg)
    await runner.open()
    try:
        result = await act(runner, action, cfg)
    finally:
        if not runner.abandoned:
            await runner.close()
    print("RESULT " + json.dumps(result), flush=True)
    if runner.abandoned:
        sys.stderr.flush()
        os._exit(0)  # asyncio.run would wait for the stuck worker task forever


def main(argv: list[str] | None = None) -> int:
    library, action, cfg = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # every library logs at WARNING and above
    # Stopping these workers cancels their idle dequeue tasks, which they report as warnings.
    for name in ("saq", "taskiq.receiver"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        asyncio.run(amain(library, action, cfg))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Run the importable copy of this module, not ``__main__``: RQ's worker imports
    # ``bench.redis_peers_runners.rq_noop`` by name, and its TALLY must be the one read here.
    from bench import redis_peers_runners

    sys.exit(redis_peers_runners.main())
