"""The job handle users hold: a snapshot of the stored record plus actions."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from conveyor import serialization
from conveyor.errors import BadInputError, JobFailedError, JobWaitTimeoutError, NotFoundError
from conveyor.jobs.tracing import stored_context
from conveyor.stores.base import CancelResult, JobRecord, JobState, LogLine

if TYPE_CHECKING:
    from conveyor.jobs.client import JobClient

R = TypeVar("R")


class JobError(msgspec.Struct, frozen=True):
    """Why an attempt failed: exception type, message and formatted traceback."""

    type: str
    message: str
    traceback: str | None = None


_error_decoder = msgspec.json.Decoder(JobError)


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


class Job(Generic[R]):
    """A job as last read from the store. ``await job.refresh()`` reads it again.

    >>> job = await export_report.enqueue(7, fmt="xlsx")
    >>> job.status
    <JobState.WAITING: 'waiting'>
    >>> await job.wait(timeout=30)
    'reports/7.xlsx'
    """

    __slots__ = ("_client", "_record")

    def __init__(self, client: JobClient, record: JobRecord) -> None:
        self._client = client
        self._record = record

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} {self.status.value}>"

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def task(self) -> str:
        return self._record.task

    @property
    def queue(self) -> str:
        return self._record.queue

    @property
    def status(self) -> JobState:
        return self._record.state

    @property
    def priority(self) -> int:
        return self._record.priority

    @property
    def attempts(self) -> int:
        return self._record.attempts

    @property
    def stalls(self) -> int:
        return self._record.stalls

    @property
    def fence(self) -> int:
        """How many times the job was claimed: the fencing token of its latest claim."""
        return self._record.fence

    @property
    def args(self) -> tuple[list[Any], dict[str, Any]]:
        return serialization.decode_call(self._record.payload)

    @property
    def progress(self) -> Any:
        p = self._record.progress
        return None if p is None else serialization.loads(p)

    @property
    def result(self) -> R | None:
        r = self._record.result
        return None if r is None else serialization.loads(r)

    @property
    def error(self) -> JobError | None:
        e = self._record.error
        return None if e is None else _error_decoder.decode(e)

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self._record.created_at / 1000, UTC)

    @property
    def scheduled_for(self) -> datetime:
        return datetime.fromtimestamp(self._record.run_at / 1000, UTC)

    @property
    def started_at(self) -> datetime | None:
        return _when(self._record.started_at)

    @property
    def finished_at(self) -> datetime | None:
        return _when(self._record.finished_at)

    @property
    def worker(self) -> str | None:
        return self._record.worker

    @property
    def request_id(self) -> str | None:
        """The id of the HTTP request that enqueued the job (if one did)."""
        context = stored_context(self._record.options)
        return None if context is None else context.request_id

    @property
    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the request that enqueued the job (if one did)."""
        context = stored_context(self._record.options)
        return None if context is None else context.traceparent

    @property
    def record(self) -> JobRecord:
        return self._record

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the CLI's ``--json`` and the HTTP API use it)."""
        args, kwargs = self.args
        error = self.error
        return {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "status": self.status.value,
            "priority": self.priority,
            "attempts": self.attempts,
            "stalls": self.stalls,
            "fence": self.fence,
            "args": args,
            "kwargs": kwargs,
            "progress": self.progress,
            "result": self.result,
            "error": None if error is None else msgspec.structs.asdict(error),
            "created_at": self.created_at.isoformat(),
            "scheduled_for": self.scheduled_for.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "worker": self.worker,
            "request_id": self.request_id,
            "traceparent": self.traceparent,
        }

    async def refresh(self) -> Job[R]:
        record = await self._client.store.get(self.id)
        if record is None:
            raise NotFoundError(f"job {self.id} no longer exists")
        self._record = record
        return self

    async def logs(self) -> list[LogLine]:
        return await self._client.store.logs(self.id)

    async def cancel(self) -> CancelResult:
        return await self._client.cancel(self.id)

    async def wait(self, timeout: float | None = None) -> R:
        """Wait until the job finishes and return its result.

        Raises ``JobFailedError`` if it failed or was cancelled,
        ``JobWaitTimeoutError`` (a ``TimeoutError``) after ``timeout`` seconds,
        saying so when no worker serves the job's queue (nothing runs a job
        but a worker). Listens to the job's events (no polling of the job itself; it is read
        again when an event says it finished, and every ``RECHECK_SECONDS`` in
        case it was removed).
        """
        if timeout is not None and math.isnan(timeout):
            raise BadInputError("timeout must be a number of seconds or None, got nan")
        deadline = None if timeout is None else time.monotonic() + timeout
        events = await self._client.events(job_id=self.id, queue=self.queue).start()
        await self.refresh()
        last_read = time.monotonic()
        while not self.status.is_finished:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                hint = await self._no_worker_hint()
                raise JobWaitTimeoutError(self.id, self.status.value, timeout or 0.0, hint)
            block = RECHECK_SECONDS if remaining is None else min(RECHECK_SECONDS, remaining)
            batch = await events.next_batch(block)
            if (
                any(e.kind.is_final for e in batch)
                or time.monotonic() - last_read > RECHECK_SECONDS
            ):
                await self.refresh()
                last_read = time.monotonic()
        if self.status is not JobState.COMPLETED:
            error = self.error
            raise JobFailedError(
                self.id,
                self.status.value,
                error.type if error else None,
                error.message if error else None,
            )
        return self.result  # type: ignore[return-value]

    async def _no_worker_hint(self) -> str:
        """What to do when :meth:`wait` gave up on a job no worker serves (else "")."""
        if self.status not in (JobState.WAITING, JobState.SCHEDULED):
            return ""
        try:
            workers = await self._client.store.workers()
        except Exception:  # the store is failing: the timeout is the news
            return ""
        if any(self.queue in worker.queues for worker in workers):
            return ""
        return (
            f"no worker is running for queue {self.queue!r}: start one"
            " (`conveyor worker module:app`, or `await app.work()` in this process)"
        )


RECHECK_SECONDS = 2.0
"""While waiting, read the job again this often even without an event."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def sleep_or_wake(event: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, returning early once ``event`` is set."""
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
