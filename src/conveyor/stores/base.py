"""The job store protocol and the records that cross it.

Every store (memory, sqlite, later redis) implements :class:`JobStore` and
passes ``tests/conformance``. Stores are deliberately dumb: they apply state
transitions atomically and check lease tokens; every decision (retry or not,
when, how long to keep a finished job) is made once, above them, in
``conveyor.jobs``.

Times are integer milliseconds since the Unix epoch throughout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    from conveyor.stores.search import JobQuery


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class JobState(StrEnum):
    """Where a job is in its life."""

    SCHEDULED = "scheduled"
    """Waiting for its ``run_at`` (a delay, or a retry backoff)."""
    WAITING_CHILDREN = "waiting-children"
    """A flow's parent: it becomes waiting once each of its children has finished."""
    WAITING = "waiting"
    """Ready; the next free worker of its queue takes it."""
    ACTIVE = "active"
    """Claimed by a worker under a lease."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
FINISHED_STATES = tuple(_FINISHED)


class NewJob(msgspec.Struct, gc=False):
    """A job to insert. ``options`` is JSON decided at enqueue (retries, timeout).

    ``search_keys`` are the ``name=value`` texts of the payload fields its
    task declares searchable (``@app.task(search=[...])``), extracted at
    enqueue (``jobs/search.py``); a store indexes each, and deletes the
    entries with the job.
    """

    id: str
    queue: str
    task: str
    payload: bytes
    options: bytes
    priority: int
    run_at: int
    created_at: int
    max_stalled: int
    search_keys: list[str] = []


class ClaimedJob(msgspec.Struct, gc=False):
    """A job a worker now holds under ``token`` until ``lease_until``.

    ``fence`` counts the claims of this job (1 on the first): every claim,
    whatever happened before (a stall, a retry, a release), gets a greater
    one, so a task can pass it to downstream writes that must reject a
    stale attempt.
    """

    id: str
    queue: str
    task: str
    payload: bytes
    options: bytes
    attempts: int
    token: str
    run_at: int
    created_at: int
    started_at: int
    priority: int = 0
    fence: int = 0


class Outcome(msgspec.Struct, gc=False):
    """How an attempt ended, as the worker reports it.

    ``state`` is COMPLETED, FAILED, CANCELLED, or SCHEDULED/WAITING for a
    retry at ``run_at``. ``keep`` trims the queue's jobs in that final state
    to the newest ``keep``; ``expires_at`` is when this job may be purged.
    """

    id: str
    token: str
    queue: str
    state: JobState
    finished_at: int
    result: bytes | None = None
    error: bytes | None = None
    run_at: int = 0
    expires_at: int | None = None
    keep: int | None = None
    progress: bytes | None = None


class JobRecord(msgspec.Struct, gc=False):
    """Everything a store knows about one job."""

    id: str
    queue: str
    task: str
    state: JobState
    priority: int
    payload: bytes
    options: bytes
    attempts: int
    stalls: int
    max_stalled: int
    created_at: int
    run_at: int
    started_at: int | None
    finished_at: int | None
    progress: bytes | None
    result: bytes | None
    error: bytes | None
    worker: str | None
    lease_until: int | None
    cancel_requested: bool
    fence: int = 0
    """How many times the job was claimed (the fence of its latest claim)."""


class LogLine(msgspec.Struct, gc=False):
    """One line of a job's log, with its time in ms since the epoch."""

    at: int
    line: str


class ProgressUpdate(msgspec.Struct, gc=False):
    """Progress and new log lines of a running job, written under its lease."""

    id: str
    token: str
    progress: bytes | None = None
    logs: list[LogLine] = msgspec.field(default_factory=list)


class LeaseStatus(StrEnum):
    LOST = "lost"
    """The token no longer holds the job: stop, write nothing."""
    CANCEL = "cancel"
    """Someone asked to cancel the job."""


class JobEventKind(StrEnum):
    """What happened to a job (``app.jobs.events()``)."""

    PROGRESS = "progress"
    """A running job reported progress (``data`` is the value, JSON)."""
    RETRYING = "retrying"
    """An attempt failed and the job will run again (``data`` is the error, JSON)."""
    STALLED = "stalled"
    """Its worker stopped renewing the lease; it runs again (or a ``failed`` follows)."""
    COMPLETED = "completed"
    FAILED = "failed"
    """It failed for good (``data`` is the error, JSON)."""
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobEventKind.COMPLETED, JobEventKind.FAILED, JobEventKind.CANCELLED)


EVENTS_KEPT = 10_000
"""Stores keep at least the newest this many job events (per queue on Redis)."""


class JobEvent(msgspec.Struct, gc=False):
    """One thing that happened to a job, written in the same step as the change itself."""

    kind: JobEventKind
    job_id: str
    queue: str
    at: int
    data: bytes | None = None


class StalledJob(msgspec.Struct, gc=False):
    id: str
    queue: str
    task: str
    failed: bool
    """True when the job ran out of ``max_stalled`` and failed."""


class CancelResult(StrEnum):
    """What ``job.cancel()`` did."""

    CANCELLED = "cancelled"
    """It was not running; it is now cancelled."""
    REQUESTED = "requested"
    """It is running; its worker cancels the attempt within ``progress_flush_interval``."""
    FINISHED = "finished"
    """It had already finished; nothing changed."""
    MISSING = "missing"


class RemoveResult(StrEnum):
    """What ``JobStore.remove`` did; the caller turns a refusal into its error."""

    REMOVED = "removed"
    MISSING = "missing"
    ACTIVE = "active"
    """Refused: a worker holds the job (cancel it first)."""
    PENDING_CHILD = "pending-child"
    """Refused: a flow parent still waits for it (its parent would wait forever)."""


class Cleaned(msgspec.Struct, gc=False):
    """What ``JobStore.clean`` did: ``removed`` jobs, or nothing if ``pending_child`` is set
    (the id of a flow child its parent still waits for, which refused the whole clean)."""

    removed: int
    pending_child: str | None = None


class QueueInfo(msgspec.Struct, gc=False):
    name: str
    paused: bool


class WorkerInfo(msgspec.Struct, gc=False):
    """What a worker's heartbeat says of it (read back by ``workers()``)."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: int
    seen_at: int = 0
    running: list[str] = []
    """Ids of the jobs it held at its last heartbeat (the first :data:`RUNNING_SHOWN`)."""
    version: str = ""
    """The conveyor version it runs."""


RUNNING_SHOWN = 100
"""A heartbeat names at most this many of its worker's running jobs."""


class Page(msgspec.Struct, gc=False):
    """One page of jobs, and the cursor of the next one (None: there is none).

    A page may hold fewer records than asked while ``next`` is set: a search
    examines a bounded number of candidates per call (``stores/search.py``).
    """

    records: list[JobRecord]
    next: str | None = None


EVENTS_PER_JOB = 100
"""``events_of`` keeps at least a job's newest this many events (progress aside) while
the job exists (on SQLite, while they are also among the newest :data:`EVENTS_KEPT`)."""


class JobStore(Protocol):
    """What the job engine needs from a store. Every method is one atomic step."""

    url: str

    def exchanges_in_flight(self, concurrency: int) -> int:
        """How many exchanges a worker of ``concurrency`` may have in flight at once
        (above the concurrency that claims ahead), each claiming its share of the free
        slots. Two pay where the store works on one while the worker runs the jobs of
        the other, and each share is large enough to pay for a call of its own: on Redis
        always (drain at concurrency 50: 25,000 -> 35,000 jobs/s); on PostgreSQL from
        concurrency 24, below which a call's fixed cost outweighs the overlap. SQLite
        keeps one: two at once contend for its one writer (concurrency 10: 14,500 ->
        9,600 jobs/s)."""
        ...

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Insert all jobs in one step; per job, False when its id already existed."""
        ...

    async def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """Record ``finished`` outcomes, then claim up to ``claim`` ready jobs.

        Returns, per outcome, whether its token still held the job, and the
        claimed jobs in queue order, then priority, then FIFO. Scheduled jobs
        that are due are promoted first. Paused queues are skipped.
        """
        ...

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        """Return when a job may be ready in ``queues``.

        A store that cannot push sleeps ``poll_interval``; one that can blocks
        until told (or a short timeout). Workers in the producer's own process
        are also woken directly by the enqueue.
        """
        ...

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        """Extend leases ``(job_id, token)``; report only those lost or to cancel."""
        ...

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        """Give jobs back as waiting, as if never claimed (graceful shutdown).

        A job whose cancellation was asked for ends cancelled instead, kept
        ``keep_ms``. (A retry outcome and a stall sweep do the same.)
        """
        ...

    async def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]: ...

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        """Like :meth:`renew` but read-only: report leases lost or whose job is to cancel.

        Workers call it often (every ``progress_flush_interval``), so a
        cancellation asked from another process is seen promptly; it takes
        no write lock.
        """
        ...

    async def events_start(self) -> str:
        """A cursor at the end of the event log: reading from it gives what happens next."""
        ...

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        """Events after ``cursor`` (of ``queues``, or all), oldest first, and the next cursor.

        When there is none yet, waits up to ``block`` seconds for one (woken
        at once by a change in this process, or by the server on Redis; else
        polling).
        """
        ...

    async def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        """Return jobs whose lease expired to waiting, or fail them past max_stalled.

        With ``exclusive_ms`` a store shared by many workers may skip the sweep
        when another worker swept less than that long ago.
        """
        ...

    async def purge_expired(self, now: int) -> int:
        """Delete finished jobs whose retention ran out."""
        ...

    async def get(self, job_id: str) -> JobRecord | None: ...
    async def logs(self, job_id: str) -> list[LogLine]: ...
    async def list_page(
        self, queue: str | None, state: JobState, cursor: str | None, limit: int
    ) -> Page:
        """Up to ``limit`` jobs in ``state`` (of ``queue``, or of all), newest first by
        ``(created_at, id)``, after ``cursor`` (``stores/search.py``: ``decode_cursor``).

        Keyset pagination: a job inserted or moved between two calls never makes a
        page repeat or skip a job older than the cursor. One index seek, never a scan.
        """
        ...

    async def search(self, query: JobQuery, cursor: str | None, limit: int) -> Page:
        """Jobs matching every criterion of ``query`` (it has at least one), in its
        driving index's order (``JobQuery.driver``), after ``cursor``.

        At most :data:`~conveyor.stores.search.SEARCH_CANDIDATES` entries of the
        driving index are examined per call (per queue on a store whose indexes are
        per queue); the others criteria are checked on each of those.
        """
        ...

    async def events_of(self, job_id: str, limit: int) -> list[JobEvent]:
        """The newest ``limit`` events of one job but its progress, oldest first;
        nothing once the job is gone."""
        ...

    async def counts(self) -> dict[str, dict[JobState, int]]: ...
    async def oldest_waiting(self) -> dict[str, int]:
        """Per queue, the ``run_at`` of its longest-waiting ready job."""
        ...

    async def queues(self) -> list[QueueInfo]: ...
    async def set_paused(self, queue: str, paused: bool) -> None: ...
    async def retry(self, job_id: str, now: int) -> bool:
        """Move a failed or cancelled job back to waiting, attempts reset."""
        ...

    async def retry_failed(self, queue: str, limit: int, now: int) -> int:
        """:meth:`retry` the ``limit`` longest-failed jobs of ``queue``; how many moved."""
        ...

    async def promote(self, job_id: str, now: int) -> bool:
        """Make a scheduled job (a delay, or a retry's backoff) waiting now (``run_at = now``)."""
        ...

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult: ...
    async def remove(self, job_id: str) -> RemoveResult:
        """Delete a job unless it is active or a flow child its parent waits for."""
        ...

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> Cleaned:
        """Delete up to ``limit`` jobs in ``state`` (never ACTIVE: the caller refuses that)
        finished, else created, before ``before``; nothing if one is a pending flow child."""
        ...

    async def count_clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        """How many jobs :meth:`clean` would delete (at most ``limit``), deleting nothing."""
        ...

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None: ...
    async def unregister(self, worker_id: str) -> None: ...
    async def workers(self) -> list[WorkerInfo]: ...


STALLED_ERROR = msgspec.json.encode(
    {
        "type": "StalledError",
        "message": "job stalled {stalls} times (its worker stopped renewing the lease)",
        "traceback": None,
    }
)
"""The error recorded on a job that stalled more often than it may, with ``{stalls}``
to fill in. Stores that apply the stall rule elsewhere (Lua) are given this template."""


def stalled_error(stalls: int) -> bytes:
    """The error recorded on a job that stalled ``stalls`` times, more than it may."""
    return STALLED_ERROR.replace(b"{stalls}", str(stalls).encode())


def released_state(run_at: int, now: int) -> JobState:
    return JobState.WAITING if run_at <= now else JobState.SCHEDULED
