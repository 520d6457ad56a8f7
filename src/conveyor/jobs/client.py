"""Enqueueing and administration of jobs: what producers and operators call.

``app.jobs`` is a :class:`JobClient` over the app's store; the sync facade
builds its own over a store it opens in its own thread.
"""

from __future__ import annotations

import asyncio
import builtins
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from conveyor import serialization
from conveyor.config import Settings
from conveyor.errors import BadInputError, ConflictError, NotFoundError
from conveyor.jobs import dedupe
from conveyor.jobs.events import JobEvents
from conveyor.jobs.ids import new_job_id
from conveyor.jobs.job import Job
from conveyor.jobs.limits import QueueControls
from conveyor.jobs.options import Call, FlowRole, JobOptions, check_options
from conveyor.jobs.pages import JobPages, parse_state
from conveyor.jobs.retention import RetentionRules
from conveyor.jobs.retry import Retention
from conveyor.jobs.search import search_keys
from conveyor.jobs.tracing import RequestContext, capture_context
from conveyor.stores.base import (
    CancelResult,
    JobEventKind,
    JobRecord,
    JobState,
    NewJob,
    QueueInfo,
    RemoveResult,
    released_state,
)
from conveyor.stores.limits import QueueLimits

if TYPE_CHECKING:
    from conveyor.stores.backend import Backend

R = TypeVar("R")


class JobClient(JobPages):
    """Enqueue, read and administer jobs in one store (paged reads: ``jobs/pages.py``)."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        opener: Callable[[], Awaitable[None]],
        retention: RetentionRules,
    ) -> None:
        self.settings = settings
        self.clock = backend.clock
        self.store = backend.jobs
        self.wakeups: set[asyncio.Event] = set()
        """Events of this process's workers, set on enqueue so they claim at once."""
        self.cancel_wakeups: set[asyncio.Event] = set()
        """Events of this process's workers, set when a running job is asked to cancel."""
        self._open = opener
        self.retention = retention
        self._dedupe = backend.dedupe
        self.controls = QueueControls(backend.limits, backend.clock, opener)

    # -- enqueue -----------------------------------------------------------

    def build(
        self,
        call: Call[Any],
        now: int,
        flow: FlowRole | None = None,
        job_id: str | None = None,
        context: RequestContext | None = None,
    ) -> NewJob:
        """The job to insert for ``call`` (``flow``, ``job_id``: as a job of a flow;
        ``context``: the request that enqueues it)."""
        task, opts = call.task, call.options
        check_options(opts)
        priority = task.priority if opts.priority is None else opts.priority
        run_at = now
        if opts.debounce is not None:
            run_at = now + round(opts.debounce[1] * 1000)
        elif opts.delay is not None:
            run_at = now + int(opts.delay * 1000)
        elif opts.at is not None:
            run_at = int(opts.at.timestamp() * 1000)
        takes_input = flow is not None and flow.parent in ("previous", "results")
        args = (None, *call.args) if takes_input else call.args
        task.check_arguments(args, call.kwargs)
        options = JobOptions(
            retries=task.retries if opts.retries is None else opts.retries,
            timeout=task.timeout if opts.timeout is None else opts.timeout,
            flow=flow,
            context=context,
        )
        return NewJob(
            id=job_id or opts.job_id or new_job_id(),
            queue=opts.queue or task.queue,
            task=task.name,
            payload=serialization.encode_call(
                call.args, call.kwargs, self.settings.max_payload_bytes
            ),
            options=msgspec.json.encode(options),
            priority=priority,
            run_at=run_at,
            created_at=now,
            max_stalled=task.max_stalled,
            search_keys=search_keys(task.signature, task.search, args, call.kwargs),
        )

    async def enqueue(self, calls: Sequence[Call[Any]]) -> list[Job[Any]]:
        """Enqueue every call in one store step; nothing is written if one is invalid.

        Calls with a debounce or throttle key go in one more step of their own.
        """
        now = self.clock.now_ms()
        context = capture_context()
        new = [self.build(call, now, context=context) for call in calls]
        await self._open()
        if any(c.options.debounce is not None or c.options.throttle is not None for c in calls):
            keys = [
                dedupe.dedupe_for(job, c.options.debounce, c.options.throttle, now)
                for job, c in zip(new, calls, strict=True)
            ]
            answers = await dedupe.insert(self.store, self._dedupe, new, keys)
        else:
            answers = [
                (job.id, c) for job, c in zip(new, await self.store.enqueue(new), strict=True)
            ]
        for wakeup in self.wakeups:
            wakeup.set()
        jobs: list[Job[Any]] = []
        for job, (job_id, was_created) in zip(new, answers, strict=True):
            record = _fresh_record(job, now) if was_created else await self.store.get(job_id)
            if record is None:  # removed between the two steps
                raise NotFoundError(f"job {job_id} existed but was removed meanwhile")
            jobs.append(Job(self, record))
        return jobs

    # -- reads -------------------------------------------------------------

    def _job(self, record: JobRecord) -> Job[Any]:
        return Job(self, record)

    async def get(self, job_id: str) -> Job[Any]:
        await self._open()
        record = await self.store.get(job_id)
        if record is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return Job(self, record)

    def events(
        self,
        *,
        job_id: str | None = None,
        queue: str | None = None,
        kinds: Sequence[JobEventKind | str] | None = None,
        cursor: str | None = None,
    ) -> JobEvents:
        """Events of one job, one queue or all, from now on, as an async iterator.

        >>> async for event in app.jobs.events(queue="reports"):
        ...     print(event.kind, event.job_id)

        Kinds: progress, retrying, stalled, completed, failed, cancelled.
        (With ``job_id`` alone every queue is read; give its ``queue`` too
        when you know it.) ``cursor``: resume where an earlier subscription
        was (its ``.cursor``), e.g. after a disconnect or a restart.
        """
        try:
            wanted = None if kinds is None else [JobEventKind(k) for k in kinds]
        except ValueError:
            names = ", ".join(k.value for k in JobEventKind)
            raise BadInputError(f"unknown job event kind in {kinds!r}; use {names}") from None
        return JobEvents(
            self.store, self._open, job_id=job_id, queue=queue, kinds=wanted, cursor=cursor
        )

    async def counts(self) -> dict[str, dict[JobState, int]]:
        """Per queue, how many jobs are in each state."""
        await self._open()
        return await self.store.counts()

    async def oldest_waiting(self) -> dict[str, int]:
        """Per queue, when its longest-waiting ready job became due (ms since the epoch)."""
        await self._open()
        return await self.store.oldest_waiting()

    async def queues(self) -> builtins.list[QueueInfo]:
        await self._open()
        return await self.store.queues()

    # -- administration ----------------------------------------------------

    async def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job: at once if it is not running, else by its worker.

        A job cancelled here is kept as long as its task's (else its queue's)
        retention keeps failed jobs, like one its worker cancels.
        """
        await self._open()
        record = await self.store.get(job_id)
        if record is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        keep_ms = self.retention.keep_failed_ms(record.queue, record.task)
        result = await self.store.cancel(job_id, self.clock.now_ms(), keep_ms)
        if result is CancelResult.MISSING:  # removed meanwhile
            raise NotFoundError(f"no job with id {job_id!r}")
        if result is CancelResult.REQUESTED:  # a worker of this process may hold it: tell it now
            for wakeup in self.cancel_wakeups:
                wakeup.set()
        return result

    async def retry(self, job_id: str) -> Job[Any]:
        """Send a failed or cancelled job back to waiting with its attempts reset."""
        await self._open()
        if not await self.store.retry(job_id, self.clock.now_ms()):
            record = await self.store.get(job_id)
            if record is None:
                raise NotFoundError(f"no job with id {job_id!r}")
            raise ConflictError(
                f"job {job_id} is {record.state.value};"
                " only failed or cancelled jobs can be retried"
            )
        return await self.get(job_id)

    async def retry_failed(self, queue: str, limit: int = 1_000) -> int:
        """Send up to ``limit`` failed jobs of ``queue`` (the longest-failed first) back to
        waiting, attempts reset; returns how many. Call again for more.

        >>> while await app.jobs.retry_failed("emails", limit=1000):
        ...     pass
        """
        _check_limit(limit)
        await self._open()
        return await self.store.retry_failed(queue, limit, self.clock.now_ms())

    async def promote(self, job_id: str) -> Job[Any]:
        """Run a scheduled job (delayed, or waiting out a retry's backoff) now."""
        await self._open()
        if not await self.store.promote(job_id, self.clock.now_ms()):
            record = await self.store.get(job_id)
            if record is None:
                raise NotFoundError(f"no job with id {job_id!r}")
            raise ConflictError(
                f"job {job_id} is {record.state.value}; only scheduled jobs can be promoted"
            )
        for wakeup in self.wakeups:
            wakeup.set()
        return await self.get(job_id)

    async def remove(self, job_id: str) -> None:
        """Delete a job; an active one, or a flow child its parent waits for, is refused."""
        await self._open()
        result = await self.store.remove(job_id)
        if result is RemoveResult.MISSING:
            raise NotFoundError(f"no job with id {job_id!r}")
        if result is RemoveResult.ACTIVE:
            raise ConflictError(f"job {job_id} is active; cancel it first")
        if result is RemoveResult.PENDING_CHILD:
            raise _pending_child(job_id)

    async def pause(self, queue: str) -> None:
        await self._open()
        await self.store.set_paused(queue, True)

    async def resume(self, queue: str) -> None:
        await self._open()
        await self.store.set_paused(queue, False)

    async def set_queue_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        rate: tuple[int, float] | None = None,
    ) -> None:
        """Limit ``queue`` across all workers: at most ``concurrency`` jobs running at
        once, at most ``rate[0]`` jobs started per ``rate[1]`` seconds. Replaces the
        queue's earlier limits (None: no limit); stored, so every worker obeys it.

        >>> await app.jobs.set_queue_limits("emails", concurrency=20, rate=(100, 1.0))
        """
        await self.controls.set_queue_limits(queue, concurrency=concurrency, rate=rate)
        for wakeup in self.wakeups:  # a raised limit lets this process's workers claim at once
            wakeup.set()

    async def queue_limits(self, queue: str) -> QueueLimits:
        """The queue's stored limits, per-task limits and back-off."""
        return await self.controls.queue_limits(queue)

    async def backoff_queue(self, queue: str, seconds: float) -> None:
        """Claim no job of ``queue`` for ``seconds`` (never shortens a longer back-off).

        A task raises ``QueueBackoff(seconds)`` to do this and give its job back.
        """
        await self.controls.backoff_queue(queue, seconds)

    async def clean(
        self,
        queue: str,
        state: JobState | str,
        older_than: float = 0.0,
        limit: int = 10_000,
        *,
        dry_run: bool = False,
    ) -> int:
        """Delete up to ``limit`` jobs of ``queue`` in ``state`` that finished (or, unfinished,
        were created) more than ``older_than`` s ago; returns how many.

        With ``dry_run`` nothing is deleted: the answer is how many would be.
        """
        if not math.isfinite(older_than) or limit < 1:
            raise BadInputError(
                f"older_than must be a finite number of seconds and limit >= 1,"
                f" got {older_than!r} and {limit!r}"
            )
        wanted = parse_state(state)
        if wanted is JobState.ACTIVE:
            raise ConflictError("active jobs cannot be cleaned; they are held by workers")
        await self._open()
        before = self.clock.now_ms() - int(older_than * 1000)
        if dry_run:
            return await self.store.count_clean(queue, wanted, before, limit)
        cleaned = await self.store.clean(queue, wanted, before, limit)
        if cleaned.pending_child is not None:
            raise _pending_child(cleaned.pending_child)
        return cleaned.removed

    # -- retention ---------------------------------------------------------

    def set_retention(self, queue: str, retention: Retention) -> None:
        """Retention for every task of ``queue`` that does not set its own."""
        self.retention.set(queue, retention)

    def retention_for(self, queue: str, task_retention: Retention | None) -> Retention:
        return self.retention.resolve(queue, task_retention)


def _pending_child(job_id: str) -> ConflictError:
    return ConflictError(f"job {job_id} is a pending flow child; cancel it first")


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 100_000:
        raise BadInputError(f"limit must be 1..100000, got {limit!r}")


def _fresh_record(job: NewJob, now: int) -> JobRecord:
    return JobRecord(
        id=job.id,
        queue=job.queue,
        task=job.task,
        state=released_state(job.run_at, now),
        priority=job.priority,
        payload=job.payload,
        options=job.options,
        attempts=0,
        stalls=0,
        max_stalled=job.max_stalled,
        created_at=job.created_at,
        run_at=job.run_at,
        started_at=None,
        finished_at=None,
        progress=None,
        result=None,
        error=None,
        worker=None,
        lease_until=None,
        cancel_requested=False,
        fence=0,
    )
