"""The worker: claims jobs in batches, runs them, acknowledges them in batches.

Five loops share one event loop:

- ``_exchange_loop`` (here) sends finished outcomes and claims new jobs in
  the same store call (one round trip, one transaction), as many as there
  are free slots, up to ``claim_batch``. Outcomes that arrive while a call
  is in flight ride on the next one, so batches grow with load by themselves.
  Each claimed job runs as its own asyncio task (``attempt.py``). At low
  concurrency the worker also claims ahead (``prefetch.py``), so that a slot
  that frees starts its next job without a round trip; above it, on a store
  that gains from it (``JobStore.exchanges_in_flight``: Redis, PostgreSQL at
  high concurrency), two exchanges are in flight, so the store works on one
  while the worker runs the jobs of the other.
- ``LeaseKeeper.renew_loop`` and ``LeaseKeeper.flush_loop`` (``leases.py``)
  renew every held lease in one call, write progress, and stop attempts
  whose lease was lost or whose job is to be cancelled.
- ``Maintenance.loop`` (``maintenance.py``) returns stalled jobs, purges
  expired ones and heartbeats.
- ``Scheduler.run`` (``scheduler.py``) fires the due schedules of the worker's queues.

Stopping (SIGTERM/SIGINT or :meth:`Worker.stop`): claim nothing more, give
back the jobs claimed ahead, let running jobs finish within
``shutdown_timeout``, then cancel the rest and release their leases so they
run again at once elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from conveyor.config import MAX_CONCURRENCY
from conveyor.errors import BadInputError, ProgrammingError
from conveyor.jobs import outcome as outcomes
from conveyor.jobs.attempt import AttemptRunner, Result, Running, stop_attempt
from conveyor.jobs.background import guard, halt
from conveyor.jobs.context import JobContext
from conveyor.jobs.job import sleep_or_wake
from conveyor.jobs.leases import LeaseKeeper
from conveyor.jobs.maintenance import Maintenance, worker_info
from conveyor.jobs.prefetch import PREFETCH_UP_TO, ClaimedAhead, prefetch_for, release
from conveyor.jobs.scheduler import Scheduler
from conveyor.jobs.worker_stats import WorkerStats
from conveyor.observability.logging import get_logger
from conveyor.stores.base import ClaimedJob, Outcome

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime

__all__ = ["Worker", "WorkerStats"]

log = get_logger("conveyor.worker")

LINGER_SECONDS = 0.005
"""Longest a worker that claims ahead delays an exchange to let a bigger one gather."""
Pending = tuple[Outcome, str, Running, float]
"""An outcome waiting for the next exchange: the outcome, its kind, its attempt, run seconds."""


class Worker:
    """Runs the jobs of ``queues`` with up to ``concurrency`` at once."""

    def __init__(
        self,
        app: Runtime,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        handle_signals: bool = False,
    ) -> None:
        s = app.settings
        self.app = app
        self.store = app.store
        self.clock = app.clock
        self.queues = list(queues) if queues else app.queue_names()
        self.concurrency = s.concurrency if concurrency is None else _checked(concurrency)
        self.burst = burst
        self.handle_signals = handle_signals
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stats = WorkerStats()
        self._lease_ms = int(s.lease_seconds * 1000)
        self._batch = s.claim_batch
        self._running: dict[str, Running] = {}
        self._ahead = ClaimedAhead(app, prefetch_for(self.concurrency, s.prefetch_max_wait))
        self._outcomes: list[Pending] = []
        self._wake = asyncio.Event()
        self._lease_check = asyncio.Event()
        self._leases = LeaseKeeper(
            app, self._running, self._lease_check, self._ahead.jobs, self._tend_ahead
        )
        self._attempts: AttemptRunner | None = None
        self._stopping = False
        self._store_errors = 0
        self._force_stop = False
        self._stopped = asyncio.Event()
        self._blocking: asyncio.Future[Any] | None = None
        self._parents_released = False
        self._claiming = 0
        """Jobs asked for by exchanges in flight."""
        self._overlap = (
            self.store.exchanges_in_flight(self.concurrency)
            if self.concurrency > PREFETCH_UP_TO
            else 1
        )
        """Exchanges in flight at most: above the concurrency that claims ahead, as many as
        the store gains from (two on Redis, and on PostgreSQL at high concurrency, so the
        server works on one while this process runs the jobs of the other)."""
        self._found_nothing = False
        """The last exchange asked for jobs, got none and carried no outcome: wait for work."""
        self._backlog = False
        """The last exchange that asked for jobs got all it asked for: more are likely
        waiting, so a second exchange may go out while one is in flight. An idle worker
        woken for one job sends one."""
        self.last_beat = time.monotonic()
        """When the store last answered this worker (an exchange or a heartbeat)."""

    # -- lifecycle -----------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running jobs get ``shutdown_timeout`` to finish.

        A second call (a second Ctrl-C) cuts the wait short: what still runs
        is cancelled and released at once.
        """
        if self._stopping:
            self._force_stop = True
            log.warning("worker stopping now", worker=self.id, running=len(self._running))
        else:
            self._stopping = True
            log.info("worker stopping", worker=self.id, running=len(self._running))
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has finished (outcomes written, leases released)."""
        await self._stopped.wait()

    async def run(self) -> WorkerStats:
        if not self.queues:
            raise ProgrammingError("the worker has no queues: register a task or pass queues=[...]")
        app = self.app
        await app.open()
        await app.declare_for_workers()  # producers elsewhere learn this app's subscriptions
        await app.jobs.controls.declare_tasks(app.tasks.values(), self.queues)
        # One thread per slot, so a sync job's timeout never runs while it waits for a thread.
        threads = ThreadPoolExecutor(
            max(self.concurrency, app.settings.sync_threads), thread_name_prefix="conveyor-task"
        )
        self._attempts = AttemptRunner(app, self.stats, threads)
        app.jobs.wakeups.add(self._wake)
        app.jobs.cancel_wakeups.add(self._lease_check)
        app.workers.append(self)
        restore = self._install_signal_handlers() if self.handle_signals else None
        info = worker_info(self.id, self.queues, self.concurrency, self.clock.now_ms())
        maintenance = Maintenance(app, info, self._beat, self._running.keys)
        maintenance_halt, lease_halt = asyncio.Event(), asyncio.Event()
        background = [
            asyncio.create_task(maintenance.loop(maintenance_halt), name="conveyor-maintenance"),
            asyncio.create_task(
                Scheduler(app, self.queues).run(maintenance_halt), name="conveyor-scheduler"
            ),
            asyncio.create_task(app.history.run(maintenance_halt), name="conveyor-history"),
        ]
        # Leases are renewed and progress flushed until the very end of the drain.
        lease_keepers = [
            asyncio.create_task(self._leases.renew_loop(lease_halt), name="conveyor-renew"),
            asyncio.create_task(self._leases.flush_loop(lease_halt), name="conveyor-flush"),
        ]
        within = app.settings.store_timeout + 1
        log.info("worker started", worker=self.id, queues=self.queues, concurrency=self.concurrency)
        try:
            await self._exchange_loop()
        finally:
            try:
                if self._blocking is not None:
                    self._blocking.cancel()
                await self._give_back_ahead()
                await halt(maintenance_halt, background, within)
                await self._shutdown()
            finally:
                await halt(lease_halt, lease_keepers, within, self._lease_check)
                app.jobs.wakeups.discard(self._wake)
                app.jobs.cancel_wakeups.discard(self._lease_check)
                app.workers.remove(self)
                if restore is not None:
                    restore()
                threads.shutdown(wait=False, cancel_futures=True)
                self._stopped.set()
        log.info("worker stopped", worker=self.id, **self.stats.fields())
        return self.stats

    def _beat(self) -> None:
        self.last_beat = time.monotonic()

    def _install_signal_handlers(self) -> Callable[[], None] | None:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        try:
            for sig in signals:
                loop.add_signal_handler(sig, self.stop)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            return None

        def restore() -> None:
            for sig in signals:
                loop.remove_signal_handler(sig)

        return restore

    async def _shutdown(self) -> None:
        """Let running jobs finish within the deadline; release what is left."""
        deadline = time.monotonic() + self.app.settings.shutdown_timeout
        while self._running and time.monotonic() < deadline and not self._force_stop:
            await self._flush_outcomes()
            await sleep_or_wake(self._wake, min(0.05, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        leftovers = list(self._running.values())
        for running in leftovers:
            running.stop_reason = "shutdown"
            if running.task is not None:
                running.task.cancel()
        await asyncio.gather(*(r.task for r in leftovers if r.task), return_exceptions=True)
        await self._flush_outcomes()
        if leftovers:
            self.stats.released += await release(self.app, leftovers)
            log.warning("released unfinished jobs", worker=self.id, count=len(leftovers))
        await self.store.unregister(self.id)

    # -- claiming and acknowledging -------------------------------------------

    async def _exchange_loop(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            await self._exchanges(in_flight)
        finally:  # left by an error or a cancel: no exchange outlives the loop
            for step in in_flight:
                step.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _exchanges(self, in_flight: set[asyncio.Task[None]]) -> None:
        poll = self.app.settings.poll_interval
        linger_until: float | None = None
        while True:
            for done in [t for t in in_flight if t.done()]:
                in_flight.discard(done)
                done.result()  # a bug in a step is raised here, as it would be inline
            free = self.concurrency - len(self._running) + self._ahead.room - self._claiming
            want = 0 if self._stopping else min(self._batch, free)
            if in_flight:
                if not (self._backlog and len(in_flight) < self._overlap):
                    # No other exchange may go out: nothing to do until one is back (a
                    # wake-up per finished job would only spin this loop).
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                # One more exchange may go out while one is in flight, if it carries enough:
                # the store works on one while this process runs the other's jobs.
                if want + len(self._outcomes) >= max(1, self.concurrency // 4):
                    in_flight.add(self._launch(want))
                    continue
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._found_nothing:
                self._found_nothing = False
                if self._outcomes:  # a job ended since that answer: its outcome goes first
                    continue
                if self._parents_released:  # a delivery after the claim made parents ready
                    self._parents_released = False
                    continue
                if self.burst and not self._running and not self._ahead:
                    return
                if self._stopping:  # stop() came during the exchange: its wake-up is not lost
                    continue
                self._wake.clear()
                await self._idle(poll)
                continue
            if not self._outcomes and want <= 0:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._may_linger(want):
                # Every slot has work and the claim would be small: let outcomes and
                # room gather for a moment, so a round trip carries several jobs.
                now = time.monotonic()
                linger_until = linger_until or now + LINGER_SECONDS
                if now < linger_until:
                    self._wake.clear()
                    await sleep_or_wake(self._wake, linger_until - now)
                    continue
            linger_until = None
            if self._overlap == 1:  # one at a time: no task to start and wait for
                await self._step(want, self._take(want))
                continue
            # With a backlog and two in flight, half now and (next turn) half while this
            # one is out: each half's jobs then run while the store works on the other.
            in_flight.add(self._launch(-(-want // self._overlap) if self._backlog else want))

    def _take(self, want: int) -> list[Pending]:
        """The outcomes an exchange of ``want`` jobs carries: every one so far."""
        pending, self._outcomes = self._outcomes, []
        self._claiming += want
        return pending

    def _launch(self, want: int) -> asyncio.Task[None]:
        """Start an exchange as a task of its own, so that another may go out meanwhile."""
        pending = self._take(want)
        return asyncio.create_task(self._step(want, pending), name="conveyor-exchange")

    async def _step(self, want: int, pending: list[Pending]) -> None:
        """One exchange and what follows it: the claimed jobs start or are held ahead."""
        try:
            claimed = await self._exchange(want, pending)
        finally:
            self._claiming -= want
            self._wake.set()
        if len(claimed) < want:
            # No backlog: jobs that come now are for idle workers first. Claim none
            # ahead until one of this worker's jobs ends.
            self._ahead.paused = True
        for job in claimed:
            self._hold(job)
        self._start_ahead()
        self._found_nothing = want > 0 and not claimed and not self._outcomes
        if want > 0:
            self._backlog = len(claimed) >= want

    async def _idle(self, poll: float) -> None:
        """Wait until the store says work may be ready, or this process wakes us.

        The store's wait is kept across wake-ups (a finished job, an in-process
        enqueue) rather than cancelled, so a blocking connection is not torn down.
        """
        if self._blocking is None or self._blocking.done():
            self._blocking = asyncio.ensure_future(self.store.wait_for_work(self.queues, poll))
        woken: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait({self._blocking, woken}, return_when=asyncio.FIRST_COMPLETED)
        woken.cancel()
        blocking = self._blocking
        if blocking.done() and not blocking.cancelled() and blocking.exception() is not None:
            log.error("waiting for work failed", error=repr(blocking.exception()))
            await self.clock.sleep_or_wake(self._wake, poll)

    async def _exchange(self, want: int, pending: list[Pending]) -> list[ClaimedJob]:
        try:
            accepted, claimed = await self.store.exchange(
                [p[0] for p in pending], self.queues, want, self.id, self._lease_ms
            )
        except Exception as exc:  # keep the outcomes; try again after a pause
            self._outcomes[:0] = pending
            self._store_errors += 1
            delay = min(5.0, 0.05 * 2 ** min(self._store_errors, 7))
            log.error("store call failed", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
            await asyncio.sleep(delay)
            return []
        self._store_errors = 0
        self._beat()
        if pending:
            self._record(pending, accepted)
            await self._deliver_to_parents(pending, accepted)
        return claimed

    async def _deliver_to_parents(self, pending: list[Pending], accepted: list[bool]) -> None:
        """Hand finished flow children's results to their parents (a no-op but on Redis,
        whose sweep repairs a delivery this process did not live to make)."""
        children = [
            (p[0].queue, p[0].id)
            for p, ok in zip(pending, accepted, strict=True)
            if ok and p[2].flow_child and p[0].state.is_finished
        ]
        if children:
            await guard(functools.partial(self.app.flows.store.deliver, children))
            self._parents_released = True

    async def _flush_outcomes(self) -> None:
        if self._outcomes:
            await self._exchange(0, self._take(0))

    def _record(self, pending: list[Pending], accepted: list[bool]) -> None:
        metrics = self.app.metrics.jobs
        stats = self.stats
        for (_outcome, kind, running, run_s), ok in zip(pending, accepted, strict=True):
            job = running.job
            if not ok:
                stats.lost += 1
                log.warning("outcome rejected: lease lost", job_id=job.id, task=job.task)
                continue
            series = metrics.series(job.queue, job.task)
            series.run.observe(run_s)
            if kind == outcomes.OutcomeKind.COMPLETED:
                stats.completed += 1
                series.completed.inc()
            elif kind == outcomes.OutcomeKind.RETRIED:
                stats.retried += 1
                series.retried.inc()
            elif kind == outcomes.OutcomeKind.FAILED:
                stats.failed += 1
                series.failed.inc()
            else:
                stats.cancelled += 1
                series.cancelled.inc()
            task = self.app.tasks.get(job.task)
            if task is not None and task.on_outcome is not None:
                task.on_outcome(kind, run_s)

    # -- jobs claimed ahead -----------------------------------------------------

    def _may_linger(self, want: int) -> bool:
        """Whether an exchange may wait: the worker claims ahead, is not stopping, every
        slot has a job to run, and the claim would be less than a refill of the jobs held
        ahead."""
        return (
            self._ahead.limit > 0
            and not self._stopping
            and want < self._ahead.limit
            and (len(self._running) >= self.concurrency or len(self._ahead) > 0)
        )

    def _start_ahead(self) -> None:
        """Start held jobs while slots are free (never while stopping)."""
        while not self._stopping and len(self._running) < self.concurrency:
            running = self._ahead.take()
            if running is None:
                return
            self._start(running)

    async def _tend_ahead(self) -> None:
        """After each lease check: record held jobs asked to cancel, drop lost ones,
        and give back those that waited ``prefetch_max_wait`` for a slot."""
        settled = self._ahead.settle()
        if settled:
            self._outcomes += settled
            self._wake.set()
        if self._ahead and not self._stopping:
            waited = self.app.settings.prefetch_max_wait
            self.stats.released += await self._ahead.give_back(waited=waited)

    async def _give_back_ahead(self) -> None:
        """Stopping: the jobs claimed ahead go back to the store at once."""
        self._outcomes += self._ahead.settle()
        try:
            self.stats.released += await self._ahead.give_back()
        except Exception as exc:  # their leases expire; the stall sweep brings them back
            log.error("giving back jobs held ahead failed", error=f"{type(exc).__name__}: {exc}")

    # -- running one job ------------------------------------------------------

    def _hold(self, job: ClaimedJob) -> None:
        """A claimed job: started if a slot is free, else held ahead."""
        ctx = JobContext(
            job.id,
            job.task,
            job.queue,
            job.attempts,
            job.token,
            self.app.settings.max_payload_bytes,
            job.fence,
        )
        running = Running(job, ctx)
        previous = self._running.get(job.id)
        if previous is not None:  # our earlier attempt lost its lease and the job came back
            stop_attempt(previous, "lost")
        if len(self._running) < self.concurrency and not self._ahead:
            self._start(running)
        else:
            self._ahead.add(running)

    def _start(self, running: Running) -> None:
        job = running.job
        self._running[job.id] = running
        self.app.metrics.jobs.series(job.queue, job.task).wait.observe(
            max(0.0, (job.started_at - job.run_at) / 1000)
        )
        running.task = asyncio.create_task(self._run(running), name=f"conveyor-job-{job.id}")

    async def _run(self, running: Running) -> None:
        assert self._attempts is not None
        result: Result | None = None
        run_s = 0.0
        try:
            result, run_s = await self._attempts.run(running)
        finally:
            # The job leaves _running only once its outcome is queued, so a
            # draining worker never sees "nothing running, nothing to send"
            # while an outcome is still on its way.
            if result is not None:
                self._outcomes.append((result[0], result[1], running, run_s))
            if self._running.get(running.job.id) is running:  # else: re-claimed after a loss
                del self._running[running.job.id]
            self._ahead.paused = False
            self._start_ahead()  # the next job starts now, not after a round trip
            self._wake.set()


def _checked(concurrency: object) -> int:
    """A worker's ``concurrency``: an integer in 1..MAX_CONCURRENCY, refused otherwise."""
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise BadInputError(
            f"a worker's concurrency must be an integer in 1..{MAX_CONCURRENCY},"
            f" got {concurrency!r}"
        )
    return concurrency
