"""The worker: claims jobs in batches, runs them, acknowledges them in batches.

Five loops share one event loop:

- ``_exchange_loop`` sends finished outcomes and claims new jobs in the same
  store call (one round trip, one transaction), as many as there are free
  slots, up to ``claim_batch``. Outcomes that arrive while a call is in
  flight ride on the next one, so batches grow with load by themselves.
- ``_renew_loop`` extends the leases of all held jobs in one call every
  third of the lease, and cancels jobs whose lease was lost or whose
  cancellation was asked for.
- ``_flush_loop`` writes buffered progress and log lines of all jobs in one call,
  and checks (read-only) whether any other held job is to cancel or was lost;
  a cancel asked in this process wakes it at once.
- ``_maintenance_loop`` returns stalled jobs, purges expired ones and heartbeats.
- ``Scheduler.run`` (``jobs/scheduler.py``) fires the due schedules of the worker's queues.

Stopping (SIGTERM/SIGINT or :meth:`Worker.stop`): claim nothing more, let
running jobs finish within ``shutdown_timeout``, then cancel the rest and
release their leases so they run again at once elsewhere.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from conveyor import serialization
from conveyor.config import MAX_CONCURRENCY
from conveyor.errors import (
    BadInputError,
    JobCancelledError,
    JobTimeoutError,
    ProgrammingError,
    QueueBackoff,
    TaskNotFoundError,
)
from conveyor.jobs import outcome as outcomes
from conveyor.jobs.client import JobOptions, options_decoder
from conveyor.jobs.context import JobContext, _current
from conveyor.jobs.flows import prepare_parent
from conveyor.jobs.job import sleep_or_wake
from conveyor.jobs.retry import Backoff, Retention
from conveyor.jobs.sandbox import run_in_sandbox
from conveyor.jobs.scheduler import Scheduler
from conveyor.jobs.tracing import bind_context
from conveyor.observability.logging import get_logger
from conveyor.stores.base import ClaimedJob, LeaseStatus, Outcome, WorkerInfo

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime
    from conveyor.jobs.task import Task

log = get_logger("conveyor.worker")


@dataclass(slots=True)
class WorkerStats:
    """What one ``worker.run()`` did."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    lost: int = 0
    released: int = 0

    @property
    def processed(self) -> int:
        return self.completed + self.failed + self.retried + self.cancelled


@dataclass(slots=True)
class _Running:
    job: ClaimedJob
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel" | "lost" | "shutdown"
    flow_child: bool = False  # reports to a flow parent when it finishes (jobs/flows.py)


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
        self._running: dict[str, _Running] = {}
        self._outcomes: list[tuple[Outcome, str, _Running, float]] = []
        self._wake = asyncio.Event()
        self._lease_check = asyncio.Event()
        self._stopping = False
        self._threads: ThreadPoolExecutor | None = None
        self._started_at = self.clock.now_ms()
        self._store_errors = 0
        self._force_stop = False
        self._stopped = asyncio.Event()
        self._blocking: asyncio.Future[Any] | None = None
        self._parents_released = False
        self.last_beat = time.monotonic()

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

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has finished (outcomes written, leases released)."""
        await self._stopped.wait()

    async def run(self) -> WorkerStats:
        if not self.queues:
            raise ProgrammingError("the worker has no queues: register a task or pass queues=[...]")
        await self.app.open()
        await self.app.declare_for_workers()  # producers elsewhere learn this app's subscriptions
        await self.app.jobs.controls.declare_tasks(self.app.tasks.values(), self.queues)
        # One thread per slot, so a sync job's timeout never runs while it waits for a thread.
        self._threads = ThreadPoolExecutor(
            max(self.concurrency, self.app.settings.sync_threads),
            thread_name_prefix="conveyor-task",
        )
        self.app.jobs.wakeups.add(self._wake)
        self.app.jobs.cancel_wakeups.add(self._lease_check)
        self.app.workers.append(self)
        restore = self._install_signal_handlers() if self.handle_signals else None
        maintenance_halt, lease_halt = asyncio.Event(), asyncio.Event()
        maintenance = [
            asyncio.create_task(
                self._maintenance_loop(maintenance_halt), name="conveyor-maintenance"
            ),
            asyncio.create_task(
                Scheduler(self.app, self.queues).run(maintenance_halt), name="conveyor-scheduler"
            ),
        ]
        # Leases are renewed and progress flushed until the very end of the drain.
        lease_keepers = [
            asyncio.create_task(self._renew_loop(lease_halt), name="conveyor-renew"),
            asyncio.create_task(self._flush_loop(lease_halt), name="conveyor-flush"),
        ]
        log.info("worker started", worker=self.id, queues=self.queues, concurrency=self.concurrency)
        try:
            await self._exchange_loop()
        finally:
            try:
                if self._blocking is not None:
                    self._blocking.cancel()
                await self._halt(maintenance_halt, maintenance)
                await self._shutdown()
            finally:
                await self._halt(lease_halt, lease_keepers)
                self.app.jobs.wakeups.discard(self._wake)
                self.app.jobs.cancel_wakeups.discard(self._lease_check)
                self.app.workers.remove(self)
                if restore is not None:
                    restore()
                self._threads.shutdown(wait=False, cancel_futures=True)
                self._stopped.set()
        log.info("worker stopped", worker=self.id, **_stats_fields(self.stats))
        return self.stats

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
            # A job asked to cancel ends cancelled instead, kept as its retention says.
            by_keep: dict[int, list[tuple[str, str]]] = {}
            for running in leftovers:
                keep_ms = self.app.retention.keep_failed_ms(running.job.queue, running.job.task)
                by_keep.setdefault(keep_ms, []).append((running.job.id, running.job.token))
            for keep_ms, leases in by_keep.items():
                self.stats.released += await self.store.release(leases, keep_ms)
            log.warning("released unfinished jobs", worker=self.id, count=len(leftovers))
        await self.store.unregister(self.id)

    # -- claiming and acknowledging -------------------------------------------

    async def _exchange_loop(self) -> None:
        poll = self.app.settings.poll_interval
        while True:
            want = 0 if self._stopping else min(self._batch, self.concurrency - len(self._running))
            if not self._outcomes and want <= 0:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            claimed = await self._exchange(want)
            for job in claimed:
                self._start(job)
            if want > 0 and not claimed and not self._outcomes:
                if self._parents_released:  # a delivery after the claim made parents ready
                    self._parents_released = False
                    continue
                if self.burst and not self._running:
                    return
                self._wake.clear()
                await self._idle(poll)

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

    async def _exchange(self, want: int) -> list[ClaimedJob]:
        pending, self._outcomes = self._outcomes, []
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
        self.last_beat = time.monotonic()
        if pending:
            self._record(pending, accepted)
            await self._deliver_to_parents(pending, accepted)
        return claimed

    async def _deliver_to_parents(
        self, pending: list[tuple[Outcome, str, _Running, float]], accepted: list[bool]
    ) -> None:
        """Hand finished flow children's results to their parents (a no-op but on Redis,
        whose sweep repairs a delivery this process did not live to make)."""
        children = [
            (p[0].queue, p[0].id)
            for p, ok in zip(pending, accepted, strict=True)
            if ok and p[2].flow_child and p[0].state.is_finished
        ]
        if children:
            await self._guard(functools.partial(self.app.flows.store.deliver, children))
            self._parents_released = True

    async def _flush_outcomes(self) -> None:
        if self._outcomes:
            await self._exchange(0)

    def _record(
        self, pending: list[tuple[Outcome, str, _Running, float]], accepted: list[bool]
    ) -> None:
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

    # -- running one job ------------------------------------------------------

    def _start(self, job: ClaimedJob) -> None:
        ctx = JobContext(
            job.id,
            job.task,
            job.queue,
            job.attempts,
            job.token,
            self.app.settings.max_payload_bytes,
            job.fence,
        )
        running = _Running(job, ctx)
        previous = self._running.get(job.id)
        if previous is not None:  # our earlier attempt lost its lease and the job came back
            self._stop_attempt(previous, "lost")
        self._running[job.id] = running
        self.app.metrics.jobs.series(job.queue, job.task).wait.observe(
            max(0.0, (job.started_at - job.run_at) / 1000)
        )
        running.task = asyncio.create_task(self._run(running), name=f"conveyor-job-{job.id}")

    async def _run(self, running: _Running) -> None:
        job, ctx = running.job, running.ctx
        _current.set(ctx)
        structlog.contextvars.bind_contextvars(
            job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempts
        )
        task = self.app.tasks.get(job.task)
        retention = self.app.retention.of_job(job.queue, job.task)
        started = time.perf_counter()
        result: tuple[Outcome, str] | None = None
        run_s = 0.0
        try:
            options = _DEFAULT_OPTIONS
            try:
                options = options_decoder.decode(job.options).under(task)
                bind_context(options.context)
                running.flow_child = options.flow is not None and options.flow.child
                if task is None:
                    raise TaskNotFoundError(
                        f"no task named {job.task!r} is registered in this worker"
                    )
                if options.flow is not None and options.flow.parent is not None:
                    job, ctx.children = await prepare_parent(
                        self.app.flows.store, job, options.flow
                    )
                value = await self._call(task, job, ctx, options)
                result = outcomes.completed(
                    job, value, self.clock.now_ms(), retention, self.app.settings.max_payload_bytes
                )
            except asyncio.CancelledError as exc:
                if running.stop_reason is None and not _being_cancelled():
                    # The task cancelled something of its own: an ordinary error.
                    result = self._after_error(job, task, exc, options, retention)
                else:
                    result = self._after_cancel(running, retention)
                    if result is None and running.stop_reason is None:
                        raise
            except QueueBackoff as backoff:
                await self._guard(functools.partial(self._back_off, running, backoff))
            except Exception as exc:
                if isinstance(exc, JobCancelledError) and running.stop_reason is not None:
                    # The task saw the flag (raise_if_cancelled) before the cancellation landed.
                    result = self._after_cancel(running, retention)
                else:
                    result = self._after_error(job, task, exc, options, retention)
            run_s = time.perf_counter() - started
            if result is not None and ctx.dirty and running.stop_reason is None:
                await self._guard(functools.partial(self._flush_one, ctx))
        finally:
            # The job leaves _running only once its outcome is queued, so a
            # draining worker never sees "nothing running, nothing to send"
            # while an outcome is still on its way.
            if result is not None:
                self._outcomes.append((result[0], result[1], running, run_s))
            if self._running.get(job.id) is running:  # else: re-claimed after a lost lease
                del self._running[job.id]
            self._wake.set()

    async def _back_off(self, running: _Running, backoff: QueueBackoff) -> None:
        """Stop the job's queue for every worker and give the job back, attempt not counted."""
        if running.ctx.dirty:
            await self._flush_one(running.ctx)
        job = running.job
        keep_ms = self.app.retention.keep_failed_ms(job.queue, job.task)
        self.stats.released += await self.app.jobs.controls.back_off_job(
            job, backoff.seconds, keep_ms
        )
        log.warning("queue backed off by the task", seconds=backoff.seconds, reason=str(backoff))

    async def _flush_one(self, ctx: JobContext) -> None:
        await self.store.update_progress([ctx.take_update()], self.app.settings.max_log_lines)

    async def _call(
        self, task: Task[Any, Any], job: ClaimedJob, ctx: JobContext, options: JobOptions
    ) -> Any:
        if task.sandbox:
            limit = self.app.settings.max_payload_bytes
            return await run_in_sandbox(task, job, ctx, options.timeout, limit)
        args, kwargs = serialization.decode_call(job.payload)
        if task.is_async:
            coro = task.fn(*args, **kwargs)
            if options.timeout is None:
                return await coro
            deadline = asyncio.timeout(options.timeout)
            try:
                async with deadline:
                    return await coro
            except TimeoutError:
                if deadline.expired():
                    raise JobTimeoutError(options.timeout) from None
                raise
        assert self._threads is not None
        call = functools.partial(contextvars.copy_context().run, task.fn, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(self._threads, call)
        deadline = asyncio.timeout(options.timeout)
        try:
            async with deadline:
                return await future
        except TimeoutError:
            if not deadline.expired():  # the function itself raised TimeoutError
                raise
            ctx.cancelled = True  # the thread cannot be killed; it sees the flag
            raise JobTimeoutError(options.timeout or 0.0) from None
        except asyncio.CancelledError:
            ctx.cancelled = True
            raise

    def _after_cancel(self, running: _Running, retention: Retention) -> tuple[Outcome, str] | None:
        if running.stop_reason == "cancel":
            log.info("job cancelled")
            return outcomes.cancelled(
                running.job, self.clock.now_ms(), retention
            ), outcomes.OutcomeKind.CANCELLED
        if running.stop_reason == "lost":
            log.warning("lease lost; attempt abandoned")
            self.stats.lost += 1
        return None

    def _after_error(
        self,
        job: ClaimedJob,
        task: Task[Any, Any] | None,
        exc: BaseException,
        options: JobOptions,
        retention: Retention,
    ) -> tuple[Outcome, str]:
        try:
            result = outcomes.after_error(
                job,
                exc,
                self.clock.now_ms(),
                retries=options.under(task).retries or 0,
                backoff=task.backoff if task else _NO_BACKOFF,
                non_retryable=task.non_retryable if task else (),
                retention=retention,
            )
        except Exception as policy_error:  # e.g. a custom backoff that raised
            log.exception("retry policy failed; failing the job")
            return outcomes.failed(job, policy_error, self.clock.now_ms(), retention), "failed"
        level = "warning" if result[1] == outcomes.OutcomeKind.RETRIED else "error"
        getattr(log, level)(
            "job attempt failed",
            outcome=result[1],
            error=f"{type(exc).__name__}: {exc}",
        )
        return result

    # -- leases, progress, maintenance ---------------------------------------

    async def _renew_loop(self, halt: asyncio.Event) -> None:
        interval = self.app.settings.lease_seconds / 3
        while not halt.is_set():
            await self.clock.sleep_or_wake(halt, interval)
            if not halt.is_set():
                await self._guard(self._renew)

    async def _renew(self) -> None:
        held = [(r.job.id, r.job.token) for r in self._running.values()]
        if held:
            self._apply(await self.store.renew(held, self._lease_ms), dict(held))

    def _apply(self, statuses: dict[str, LeaseStatus], tokens: dict[str, str]) -> None:
        """Stop attempts whose lease was lost or whose job is to be cancelled.

        ``tokens`` are the tokens the call was made with: if this worker has
        claimed the job again meanwhile, the answer is about the old attempt.
        """
        for job_id, status in statuses.items():
            running = self._running.get(job_id)
            if running is not None and running.job.token == tokens.get(job_id):
                self._stop_attempt(running, "lost" if status is LeaseStatus.LOST else "cancel")

    def _stop_attempt(self, running: _Running, reason: str) -> None:
        if running.stop_reason is not None:
            return
        running.stop_reason = reason
        running.ctx.cancelled = True
        if running.task is not None:
            running.task.cancel()

    async def _flush_loop(self, halt: asyncio.Event) -> None:
        """Every ``progress_flush_interval``, or at once when a cancel is asked in this process."""
        interval = self.app.settings.progress_flush_interval
        while not halt.is_set():
            await self.clock.sleep_or_wake(self._lease_check, interval)  # _halt sets it too
            self._lease_check.clear()
            if not halt.is_set():
                await self._guard(self._flush_progress)

    async def _flush_progress(self) -> None:
        """Write progress of the jobs that have some; check the leases of the others.

        Both calls answer which leases were lost or are to cancel, so a
        cancellation asked from anywhere is seen within one interval.
        """
        updates = [r.ctx.take_update() for r in self._running.values() if r.ctx.dirty]
        if updates:
            statuses = await self.store.update_progress(updates, self.app.settings.max_log_lines)
            self._apply(statuses, {u.id: u.token for u in updates})
        written = {u.id for u in updates}
        quiet = [(r.job.id, r.job.token) for r in self._running.values() if r.job.id not in written]
        if quiet:
            self._apply(await self.store.check_leases(quiet), dict(quiet))

    async def _maintenance_loop(self, halt: asyncio.Event) -> None:
        interval = self.app.settings.sweep_interval
        while not halt.is_set():
            await self._guard(self._maintain)
            await self.clock.sleep_or_wake(halt, interval)

    async def _halt(self, halt: asyncio.Event, loops: list[asyncio.Task[None]]) -> None:
        """Stop background loops by asking them, not by cancelling them mid-call.

        (A cancellation that lands inside a redis-py call can be swallowed, and a
        loop cancelled that way would run on forever.) A loop that does not end
        within the store timeout is cancelled after all.
        """
        halt.set()
        self._lease_check.set()  # the flush loop sleeps on it
        try:
            async with asyncio.timeout(self.app.settings.store_timeout + 1):
                await asyncio.gather(*loops, return_exceptions=True)
        except TimeoutError:
            for loop in loops:
                loop.cancel()

    async def _maintain(self) -> None:
        s = self.app.settings
        now = self.clock.now_ms()
        keep_ms = int(s.keep_failed_seconds * 1000)
        exclusive_ms = int(s.sweep_interval * 900)  # one worker per interval sweeps a shared store
        for stalled in await self.store.sweep_stalled(now, keep_ms, exclusive_ms):
            series = self.app.metrics.jobs.series(stalled.queue, stalled.task)
            series.stalled.inc()
            if stalled.failed:
                series.failed.inc()
            log.warning("job stalled", job_id=stalled.id, task=stalled.task, failed=stalled.failed)
        await self.store.purge_expired(now)
        info = WorkerInfo(
            self.id,
            socket.gethostname(),
            os.getpid(),
            self.queues,
            self.concurrency,
            self._started_at,
            now,
        )
        await self.store.heartbeat(info, int(s.sweep_interval * 3000))
        self.last_beat = time.monotonic()
        await self.app.flows.store.repair(now)

    async def _guard(self, step: Callable[[], Any]) -> None:
        """Run a background step; a failing store must not kill the worker."""
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = getattr(step, "__name__", None) or getattr(step, "func", step).__name__
            log.error("worker step failed", step=name, error=f"{type(exc).__name__}: {exc}")


_NO_BACKOFF = Backoff.fixed(0)
_DEFAULT_OPTIONS = JobOptions()


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


def _being_cancelled() -> bool:
    """True if someone cancelled the current task (not a future the task awaited)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def _stats_fields(stats: WorkerStats) -> dict[str, int]:
    return {
        "completed": stats.completed,
        "failed": stats.failed,
        "retried": stats.retried,
        "cancelled": stats.cancelled,
        "lost": stats.lost,
        "released": stats.released,
    }
