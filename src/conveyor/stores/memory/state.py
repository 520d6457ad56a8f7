"""The data of a memory backend, and the moves every memory store makes on it.

One :class:`MemoryState` holds every job, queue, schedule row, dedupe key,
limit, rate-limit state, job event, history row and audit entry of a memory
backend, guarded by one lock (the sync facade may call in from another
thread). Its stores (``jobs.py``, ``flows.py``, ``schedules.py``, ...) each
take the lock for one step and use the methods here, so a job changes state
in one way only.

Heaps use lazy deletion: an entry is valid only while its job is still in
that state with the same ``version``.
"""

from __future__ import annotations

import heapq
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Protocol

from conveyor.clock import Clock
from conveyor.stores.audit import AuditEntry
from conveyor.stores.base import (
    EVENTS_KEPT,
    EVENTS_PER_JOB,
    JobEvent,
    JobEventKind,
    JobRecord,
    JobState,
    LogLine,
    NewJob,
    WorkerInfo,
    released_state,
)
from conveyor.stores.memory.gate import MemoryLimits, ReadyEntry
from conveyor.stores.notify import Notifier
from conveyor.stores.ratelimit import RateTable
from conveyor.stores.schedules import ScheduleRecord
from conveyor.stores.search import ERROR_PREFIXES, error_keys, job_field_keys


@dataclass(slots=True)
class StoredJob:
    """One job as the memory backend keeps it."""

    seq: int
    id: str
    queue: str
    task: str
    state: JobState
    priority: int
    payload: bytes
    options: bytes
    run_at: int
    created_at: int
    max_stalled: int
    attempts: int = 0
    stalls: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    expires_at: int | None = None
    progress: bytes | None = None
    result: bytes | None = None
    error: bytes | None = None
    worker: str | None = None
    token: str | None = None
    lease_until: int | None = None
    cancel_requested: bool = False
    fence: int = 0
    version: int = 0
    logs: deque[LogLine] = field(default_factory=deque)
    keys: set[str] = field(default_factory=set)
    """Its index keys (``stores/search.py``): searchable fields, and its error's while failed."""
    timeline: deque[JobEvent] = field(default_factory=lambda: deque(maxlen=EVENTS_PER_JOB))

    def record(self) -> JobRecord:
        return JobRecord(
            id=self.id,
            queue=self.queue,
            task=self.task,
            state=self.state,
            priority=self.priority,
            payload=self.payload,
            options=self.options,
            attempts=self.attempts,
            stalls=self.stalls,
            max_stalled=self.max_stalled,
            created_at=self.created_at,
            run_at=self.run_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            progress=self.progress,
            result=self.result,
            error=self.error,
            worker=self.worker,
            lease_until=self.lease_until,
            cancel_requested=self.cancel_requested,
            fence=self.fence,
        )


class FlowHook(Protocol):
    """What the state asks of the flows (``flows.py``), inside the step that moves a job."""

    def finished(self, job: StoredJob) -> None:
        """``job`` reached a final state: report it to its parent, if it has one."""
        ...

    def deleted(self, job: StoredJob) -> None:
        """``job`` is gone: forget the flow it was the parent of."""
        ...

    def awaits_children(self, job_id: str) -> bool:
        """Whether ``job_id`` is a parent some of whose children have not reported."""
        ...

    def reports_to_parent(self, job_id: str) -> bool:
        """Whether ``job_id`` is a child its parent still waits for."""
        ...


class _NoFlows:
    def finished(self, job: StoredJob) -> None:
        return None

    def deleted(self, job: StoredJob) -> None:
        return None

    def awaits_children(self, job_id: str) -> bool:
        return False

    def reports_to_parent(self, job_id: str) -> bool:
        return False


class MemoryState:
    """Everything a memory backend holds; callers take :attr:`lock` around each step."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.jobs: dict[str, StoredJob] = {}
        self.ready: dict[str, list[ReadyEntry]] = defaultdict(list)
        self.scheduled: dict[str, list[tuple[int, int, str, int]]] = defaultdict(list)
        self.known_queues: set[str] = set()
        self.paused: set[str] = set()
        self.workers: dict[str, tuple[WorkerInfo, int]] = {}
        self.schedule_rows: dict[str, ScheduleRecord] = {}
        self.dedupe_keys: dict[tuple[str, str], tuple[str, int]] = {}
        self.limits = MemoryLimits()
        self.rate_limits = RateTable()
        self.flows: FlowHook = _NoFlows()
        self.notifier = Notifier()
        """Woken by every job event, for readers of ``jobs.read_events``."""
        self.events: deque[tuple[int, JobEvent]] = deque(maxlen=EVENTS_KEPT)
        self.event_seq = 0
        self.history: dict[tuple[str, tuple[str, ...], int], int] = {}
        """(kind, labels, minute) -> value (``history.py``)."""
        self.history_hours: dict[tuple[str, tuple[str, ...], int], int] = {}
        """(kind, labels, hour) -> value."""
        self.audit: deque[AuditEntry] = deque()
        self.audit_seq = 0
        self._seq = 0
        # Finished job ids per (queue, state), oldest finish first: count retention pops here.
        self._finished: dict[tuple[str, JobState], dict[str, None]] = defaultdict(dict)

    # -- moves ----------------------------------------------------------------

    def insert(self, new: NewJob, now: int) -> bool:
        """Insert one job unless its id exists."""
        if new.id in self.jobs:
            return False
        self._seq += 1
        job = StoredJob(
            seq=self._seq,
            id=new.id,
            queue=new.queue,
            task=new.task,
            state=JobState.WAITING,
            priority=new.priority,
            payload=new.payload,
            options=new.options,
            run_at=new.run_at,
            created_at=new.created_at,
            max_stalled=new.max_stalled,
            keys=set(job_field_keys(new.search_keys)),
        )
        self.jobs[new.id] = job
        self.known_queues.add(new.queue)
        self.place(job, released_state(new.run_at, now))
        return True

    def place(self, job: StoredJob, state: JobState) -> None:
        """Put ``job`` into ``state`` and index it where that state needs it."""
        if job.state.is_finished:
            self._finished[job.queue, job.state].pop(job.id, None)
        if job.state is JobState.FAILED and state is not JobState.FAILED:
            job.keys = {k for k in job.keys if not k.startswith(ERROR_PREFIXES)}
        elif state is JobState.FAILED and job.state is not JobState.FAILED:
            job.keys.update(error_keys(job.error))
        self.limits.moved(job.queue, job.task, job.state, state)
        job.state = state
        job.version += 1
        if state.is_finished:
            self._finished[job.queue, state][job.id] = None
        if state is JobState.WAITING:
            entry = (-job.priority, job.run_at, job.seq, job.id, job.version)
            heapq.heappush(self.ready[job.queue], entry)
        elif state is JobState.SCHEDULED:
            heapq.heappush(self.scheduled[job.queue], (job.run_at, job.seq, job.id, job.version))
        if state.is_finished:
            self.flows.finished(job)

    def finish(
        self, job: StoredJob, state: JobState, now: int, expires_at: int | None, error: bytes | None
    ) -> None:
        """End ``job`` in a final ``state`` and write its event."""
        job.finished_at = now
        job.expires_at = expires_at
        if error is not None:
            job.error = error
        self.place(job, state)
        self.emit(job, JobEventKind(state.value), now, job.error if error is not None else None)

    def emit(self, job: StoredJob, kind: JobEventKind, now: int, data: bytes | None = None) -> None:
        self.event_seq += 1
        event = JobEvent(kind, job.id, job.queue, now, data)
        self.events.append((self.event_seq, event))
        if kind is not JobEventKind.PROGRESS:
            job.timeline.append(event)
        self.notifier.notify()

    def clear_lease(self, job: StoredJob) -> None:
        job.token = None
        job.lease_until = None
        job.cancel_requested = False

    def holding(self, job_id: str, token: str) -> StoredJob | None:
        """The job ``token`` holds under a lease, or None."""
        job = self.jobs.get(job_id)
        if job is None or job.state is not JobState.ACTIVE or job.token != token:
            return None
        return job

    def promote_due(self, queue: str, now: int) -> None:
        heap = self.scheduled.get(queue)
        while heap and heap[0][0] <= now:
            _, _, job_id, version = heapq.heappop(heap)
            job = self.jobs.get(job_id)
            if job is not None and job.version == version and job.state is JobState.SCHEDULED:
                self.place(job, JobState.WAITING)

    def is_ready(self, entry: ReadyEntry) -> bool:
        """Whether a ready-heap entry is still its job's: the job waits and was not moved since."""
        job = self.jobs.get(entry[3])
        return job is not None and job.version == entry[4] and job.state is JobState.WAITING

    def release(self, leases: list[tuple[str, str]], now: int, keep_ms: int) -> int:
        """Give held jobs back as if never claimed; a job to cancel ends cancelled."""
        released = 0
        for job_id, token in leases:
            job = self.holding(job_id, token)
            if job is None:
                continue
            job.attempts = max(0, job.attempts - 1)
            cancel = job.cancel_requested
            self.clear_lease(job)
            if cancel:
                self.finish(job, JobState.CANCELLED, now, now + keep_ms, None)
            else:
                self.place(job, released_state(job.run_at, now))
            released += 1
        return released

    def delete(self, job: StoredJob) -> None:
        if job.state.is_finished:
            self._finished[job.queue, job.state].pop(job.id, None)
        del self.jobs[job.id]
        self.flows.deleted(job)

    def oldest_finished(self, queue: str, state: JobState, limit: int) -> list[StoredJob]:
        """Up to ``limit`` jobs of ``queue`` in a final ``state``, the longest-finished first."""
        ids = self._finished[queue, state]
        return [self.jobs[job_id] for job_id, _ in zip(ids, range(limit), strict=False)]

    def trim(self, queue: str, state: JobState, keep: int) -> None:
        """Delete the oldest finished jobs of ``queue`` in ``state`` beyond the newest ``keep``."""
        finished = self._finished[queue, state]
        while len(finished) > keep:
            self.delete(self.jobs[next(iter(finished))])
