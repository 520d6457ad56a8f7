"""One attempt of one claimed job: call the task, and turn how it ended into an outcome.

:class:`AttemptRunner` runs the task function (async on the loop, sync in
the worker's thread pool, sandboxed in a child process), enforces its
timeout, and asks ``outcome.py`` what its return value or exception means
(completed, retry, failed, cancelled). The worker keeps the bookkeeping:
which jobs run, and sending their outcomes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from conveyor import serialization
from conveyor.errors import JobCancelledError, JobTimeoutError, QueueBackoff, TaskNotFoundError
from conveyor.jobs import outcome as outcomes
from conveyor.jobs.background import guard
from conveyor.jobs.context import JobContext, _current
from conveyor.jobs.flows import prepare_parent
from conveyor.jobs.options import JobOptions, options_decoder
from conveyor.jobs.retry import Backoff, Retention
from conveyor.jobs.sandbox import run_in_sandbox
from conveyor.jobs.tracing import bind_context
from conveyor.jobs.worker_stats import WorkerStats
from conveyor.observability.logging import get_logger
from conveyor.stores.base import ClaimedJob, Outcome

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime
    from conveyor.jobs.task import Task

log = get_logger("conveyor.worker")

Result = tuple[Outcome, str]
"""An outcome to send, and its kind (``outcome.OutcomeKind``)."""


@dataclass(slots=True)
class Running:
    """A job this worker holds, and the asyncio task running its attempt."""

    job: ClaimedJob
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel" | "lost" | "shutdown"
    flow_child: bool = False  # reports to a flow parent when it finishes (jobs/flows.py)


def stop_attempt(running: Running, reason: str) -> None:
    """Cancel a running attempt (its lease was lost, or its job is to be cancelled)."""
    if running.stop_reason is not None:
        return
    running.stop_reason = reason
    running.ctx.cancelled = True  # a sync function's thread cannot be cancelled: it sees this
    if running.task is not None:
        running.task.cancel()


class AttemptRunner:
    """Runs attempts for one worker: its app, its stats and its thread pool."""

    def __init__(self, app: Runtime, stats: WorkerStats, threads: ThreadPoolExecutor) -> None:
        self.app = app
        self.stats = stats
        self.threads = threads

    async def run(self, running: Running) -> tuple[Result | None, float]:
        """Run ``running``'s attempt; its outcome (None: nothing to send) and run time."""
        job, ctx = running.job, running.ctx
        _current.set(ctx)
        structlog.contextvars.bind_contextvars(
            job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempts
        )
        app = self.app
        task = app.tasks.get(job.task)
        retention = app.retention.of_job(job.queue, job.task)
        started = time.perf_counter()
        result: Result | None = None
        options = _DEFAULT_OPTIONS
        try:
            options = options_decoder.decode(job.options).under(task)
            bind_context(options.context)
            running.flow_child = options.flow is not None and options.flow.child
            if task is None:
                raise TaskNotFoundError(f"no task named {job.task!r} is registered in this worker")
            if options.flow is not None and options.flow.parent is not None:
                job, ctx.children = await prepare_parent(app.flows.store, job, options.flow)
            value = await self._call(task, job, ctx, options)
            now = app.clock.now_ms()
            limit = app.settings.max_payload_bytes
            result = outcomes.completed(job, value, now, retention, limit)
        except asyncio.CancelledError as exc:
            if running.stop_reason is None and not _being_cancelled():
                # The task cancelled something of its own: an ordinary error.
                result = self._after_error(job, task, exc, options, retention)
            else:
                result = self._after_cancel(running, retention)
                if result is None and running.stop_reason is None:
                    raise
        except QueueBackoff as backoff:
            await guard(functools.partial(self._back_off, running, backoff))
        except Exception as exc:
            if isinstance(exc, JobCancelledError) and running.stop_reason is not None:
                # The task saw the flag (raise_if_cancelled) before the cancellation landed.
                result = self._after_cancel(running, retention)
            else:
                result = self._after_error(job, task, exc, options, retention)
        run_s = time.perf_counter() - started
        if result is not None and ctx.dirty and running.stop_reason is None:
            await guard(functools.partial(self.flush, ctx))
        return result, run_s

    async def flush(self, ctx: JobContext) -> None:
        """Write one attempt's buffered progress and log lines now."""
        store, lines = self.app.store, self.app.settings.max_log_lines
        await store.update_progress([ctx.take_update()], lines)

    async def _back_off(self, running: Running, backoff: QueueBackoff) -> None:
        """Stop the job's queue for every worker and give the job back, attempt not counted."""
        if running.ctx.dirty:
            await self.flush(running.ctx)
        job = running.job
        keep_ms = self.app.retention.keep_failed_ms(job.queue, job.task)
        self.stats.released += await self.app.jobs.controls.back_off_job(
            job, backoff.seconds, keep_ms
        )
        log.warning("queue backed off by the task", seconds=backoff.seconds, reason=str(backoff))

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
        call = functools.partial(contextvars.copy_context().run, task.fn, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(self.threads, call)
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

    def _after_cancel(self, running: Running, retention: Retention) -> Result | None:
        if running.stop_reason == "cancel":
            log.info("job cancelled")
            now = self.app.clock.now_ms()
            return outcomes.cancelled(running.job, now, retention), outcomes.OutcomeKind.CANCELLED
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
    ) -> Result:
        now = self.app.clock.now_ms()
        try:
            result = outcomes.after_error(
                job,
                exc,
                now,
                retries=options.under(task).retries or 0,
                backoff=task.backoff if task else _NO_BACKOFF,
                non_retryable=task.non_retryable if task else (),
                retention=retention,
            )
        except Exception as policy_error:  # e.g. a custom backoff that raised
            log.exception("retry policy failed; failing the job")
            return outcomes.failed(job, policy_error, now, retention), "failed"
        level = "warning" if result[1] == outcomes.OutcomeKind.RETRIED else "error"
        getattr(log, level)(
            "job attempt failed",
            outcome=result[1],
            error=f"{type(exc).__name__}: {exc}",
        )
        return result


_NO_BACKOFF = Backoff.fixed(0)
_DEFAULT_OPTIONS = JobOptions()


def _being_cancelled() -> bool:
    """True if someone cancelled the current task (not a future the task awaited)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0
