"""The in-process job store: tests and ephemeral use, same semantics as the others.

State lives in plain dicts and heaps guarded by one lock (the sync facade
may call in from another thread). Heaps use lazy deletion: an entry is
valid only while its job is still in that state with the same ``version``.
"""

from __future__ import annotations

import asyncio
import heapq
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from conveyor.errors import ConflictError
from conveyor.stores.base import (
    EVENTS_KEPT,
    FINISHED_STATES,
    CancelResult,
    ClaimedJob,
    JobEvent,
    JobEventKind,
    JobRecord,
    JobState,
    LeaseStatus,
    LogLine,
    NewJob,
    Outcome,
    ProgressUpdate,
    QueueInfo,
    StalledJob,
    WorkerInfo,
    now_ms,
    released_state,
    stalled_error,
)
from conveyor.stores.limits import earliest
from conveyor.stores.memory.limits import MemoryLimits
from conveyor.stores.notify import Notifier, read_when_ready
from conveyor.stores.schedules import ScheduleRecord


@dataclass(slots=True)
class _Job:
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


class MemoryJobStore:
    """A :class:`~conveyor.stores.base.JobStore` held in this process's memory."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._seq = 0
        self._ready: dict[str, list[tuple[int, int, int, str, int]]] = defaultdict(list)
        self._scheduled: dict[str, list[tuple[int, int, str, int]]] = defaultdict(list)
        self._known_queues: set[str] = set()
        self._paused: set[str] = set()
        self._workers: dict[str, tuple[WorkerInfo, int]] = {}
        # Finished job ids per (queue, state), oldest finish first: count retention pops here.
        self._finished: dict[tuple[str, JobState], dict[str, None]] = defaultdict(dict)
        # Rows of the schedule and dedupe stores that sit beside this one (same lock).
        self.schedule_rows: dict[str, ScheduleRecord] = {}
        self.dedupe_keys: dict[tuple[str, str], tuple[str, int]] = {}
        self.limits = MemoryLimits()
        # Set by the flow store (memory/flows.py): told of every finished and deleted job.
        self.flow_hook: Callable[[_Job, bool], None] | None = None
        self._events: deque[tuple[int, JobEvent]] = deque(maxlen=EVENTS_KEPT)
        self._event_seq = 0
        self._notifier = Notifier()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- placement ---------------------------------------------------------

    def _place(self, job: _Job, state: JobState) -> None:
        """Put ``job`` into ``state`` and index it where that state needs it."""
        if job.state.is_finished:
            self._finished[job.queue, job.state].pop(job.id, None)
        self.limits.moved(job.queue, job.task, job.state, state)
        job.state = state
        job.version += 1
        if state.is_finished:
            self._finished[job.queue, state][job.id] = None
        if state is JobState.WAITING:
            entry = (-job.priority, job.run_at, job.seq, job.id, job.version)
            heapq.heappush(self._ready[job.queue], entry)
        elif state is JobState.SCHEDULED:
            heapq.heappush(self._scheduled[job.queue], (job.run_at, job.seq, job.id, job.version))
        if state.is_finished and self.flow_hook is not None:
            self.flow_hook(job, False)

    def _end_cancelled(self, job: _Job, now: int, expires_at: int | None) -> None:
        job.finished_at = now
        job.expires_at = expires_at
        self._place(job, JobState.CANCELLED)
        self._emit(job, JobEventKind.CANCELLED, now)

    def _emit(self, job: _Job, kind: JobEventKind, now: int, data: bytes | None = None) -> None:
        self._event_seq += 1
        self._events.append((self._event_seq, JobEvent(kind, job.id, job.queue, now, data)))
        self._notifier.notify()

    def _clear_lease(self, job: _Job) -> None:
        job.token = None
        job.lease_until = None
        job.cancel_requested = False

    def _holds(self, job_id: str, token: str) -> _Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.state is not JobState.ACTIVE or job.token != token:
            return None
        return job

    def _promote_due(self, queue: str, now: int) -> None:
        heap = self._scheduled.get(queue)
        while heap and heap[0][0] <= now:
            _, _, job_id, version = heapq.heappop(heap)
            job = self._jobs.get(job_id)
            if job is not None and job.version == version and job.state is JobState.SCHEDULED:
                self._place(job, JobState.WAITING)

    # -- writes ------------------------------------------------------------

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        created: list[bool] = []
        now = now_ms()
        with self._lock:
            for new in jobs:
                created.append(self.insert_locked(new, now))
        return created

    def insert_locked(self, new: NewJob, now: int) -> bool:
        """Insert one job unless its id exists (the caller holds the lock)."""
        if new.id in self._jobs:
            return False
        self._seq += 1
        job = _Job(
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
        )
        self._jobs[new.id] = job
        self._known_queues.add(new.queue)
        self._place(job, released_state(new.run_at, now))
        return True

    async def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        with self._lock:
            now = now_ms()
            accepted = [self._finish(outcome, now) for outcome in finished]
            claimed = self._claim(queues, claim, worker, lease_ms, now) if claim > 0 else []
        return accepted, claimed

    def _finish(self, outcome: Outcome, now: int) -> bool:
        job = self._holds(outcome.id, outcome.token)
        if job is None:
            return False
        if outcome.progress is not None:
            job.progress = outcome.progress
        job.error = outcome.error
        if outcome.state in (JobState.WAITING, JobState.SCHEDULED):
            job.run_at = outcome.run_at
            if job.cancel_requested:
                self._end_cancelled(job, now, outcome.expires_at)
            else:
                self._place(job, released_state(outcome.run_at, now))
                self._emit(job, JobEventKind.RETRYING, now, outcome.error)
            self._clear_lease(job)
            return True
        self._clear_lease(job)
        job.result = outcome.result
        job.finished_at = outcome.finished_at
        job.expires_at = outcome.expires_at
        self._place(job, outcome.state)
        self._emit(job, JobEventKind(outcome.state.value), now, outcome.error)
        if outcome.keep is not None:
            self._trim(job.queue, outcome.state, outcome.keep)
        return True

    def _trim(self, queue: str, state: JobState, keep: int) -> None:
        finished = self._finished[queue, state]
        while len(finished) > keep:
            self._delete(self._jobs[next(iter(finished))])

    def _awaits(self, job: _Job) -> bool:
        """Whether ``job`` is a flow parent some of whose children have not reported."""
        hook = self.flow_hook
        flow = None if hook is None else getattr(hook, "flows", {}).get(job.id)
        return flow is not None and bool(flow.pending > 0)

    def _reports(self, job: _Job) -> bool:
        """Whether ``job`` is a flow child its parent still waits for."""
        hook = self.flow_hook
        return hook is not None and job.id in getattr(hook, "parent_of", {})

    def _delete(self, job: _Job) -> None:
        if job.state.is_finished:
            self._finished[job.queue, job.state].pop(job.id, None)
        del self._jobs[job.id]
        if self.flow_hook is not None:
            self.flow_hook(job, True)

    def _claim(
        self, queues: Sequence[str], limit: int, worker: str, lease_ms: int, now: int
    ) -> list[ClaimedJob]:
        token = secrets.token_hex(8)
        claimed: list[ClaimedJob] = []
        self.limits.wake_at = None
        for queue in queues:
            if queue in self._paused:
                continue
            self._promote_due(queue, now)
            heap = self._ready[queue]
            gate = self.limits.gate(queue, limit - len(claimed), now, heap, self._is_ready)
            self.limits.wake_at = earliest(self.limits.wake_at, gate.wake_at)
            taken = 0
            while heap and taken < gate.room:
                entry = heapq.heappop(heap)
                if not self._is_ready(entry):
                    continue
                job = self._jobs[entry[3]]
                if not gate.admits(job.task):
                    self.limits.park(queue, job.task, entry)
                    continue
                taken += 1
                claimed.append(self._claim_one(job, token, worker, now + lease_ms, now))
            self.limits.record(queue, now, taken)
            if len(claimed) >= limit:
                break
        return claimed

    def _is_ready(self, entry: tuple[int, int, int, str, int]) -> bool:
        """Whether a ready-heap entry is still its job's: the job waits and was not moved since."""
        job = self._jobs.get(entry[3])
        return job is not None and job.version == entry[4] and job.state is JobState.WAITING

    def _claim_one(
        self, job: _Job, token: str, worker: str, lease_until: int, now: int
    ) -> ClaimedJob:
        job.attempts += 1
        job.fence += 1
        job.token = token
        job.worker = worker
        job.lease_until = lease_until
        job.started_at = now
        self._place(job, JobState.ACTIVE)
        return ClaimedJob(
            id=job.id,
            queue=job.queue,
            task=job.task,
            payload=job.payload,
            options=job.options,
            attempts=job.attempts,
            token=token,
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=now,
            priority=job.priority,
            fence=job.fence,
        )

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        # Poll; sooner when a rate limit's next slot opens sooner.
        wake_at = self.limits.wake_at
        if wake_at is not None:
            poll_interval = min(poll_interval, max(0.001, (wake_at - now_ms()) / 1000))
        await asyncio.sleep(poll_interval)

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self._lock:
            until = now_ms() + lease_ms
            for job_id, token in leases:
                job = self._holds(job_id, token)
                if job is None:
                    statuses[job_id] = LeaseStatus.LOST
                    continue
                job.lease_until = until
                if job.cancel_requested:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        with self._lock:
            return self.release_locked(leases, now_ms(), keep_ms)

    def release_locked(self, leases: Sequence[tuple[str, str]], now: int, keep_ms: int) -> int:
        """Give held jobs back as if never claimed (the caller holds the lock)."""
        released = 0
        for job_id, token in leases:
            job = self._holds(job_id, token)
            if job is None:
                continue
            job.attempts = max(0, job.attempts - 1)
            if job.cancel_requested:
                self._end_cancelled(job, now, now + keep_ms)
            else:
                self._place(job, released_state(job.run_at, now))
            self._clear_lease(job)
            released += 1
        return released

    async def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self._lock:
            for update in updates:
                job = self._holds(update.id, update.token)
                if job is None:
                    statuses[update.id] = LeaseStatus.LOST
                    continue
                if update.progress is not None:
                    job.progress = update.progress
                    self._emit(job, JobEventKind.PROGRESS, now_ms(), update.progress)
                job.logs.extend(update.logs)
                while len(job.logs) > max_log_lines:
                    job.logs.popleft()
                if job.cancel_requested:
                    statuses[update.id] = LeaseStatus.CANCEL
        return statuses

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self._lock:
            for job_id, token in leases:
                job = self._holds(job_id, token)
                if job is None:
                    statuses[job_id] = LeaseStatus.LOST
                elif job.cancel_requested:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    async def events_start(self) -> str:
        with self._lock:
            return str(self._event_seq)

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        async def read() -> tuple[str, list[JobEvent]]:
            return self._events_after(int(cursor), queues, limit)

        return await read_when_ready(read, self._notifier, block, block)

    def _events_after(
        self, after: int, queues: Sequence[str] | None, limit: int
    ) -> tuple[str, list[JobEvent]]:
        wanted = None if queues is None else set(queues)
        found: list[JobEvent] = []
        with self._lock:
            last = after
            for seq, event in self._events:
                if seq <= after:
                    continue
                if len(found) >= limit:
                    break
                last = seq
                if wanted is None or event.queue in wanted:
                    found.append(event)
            last = max(last, after)
        return str(last), found

    async def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        stalled: list[StalledJob] = []
        with self._lock:
            for job in list(self._jobs.values()):
                if job.state is not JobState.ACTIVE or (job.lease_until or 0) >= now:
                    continue
                cancel = job.cancel_requested
                self._clear_lease(job)
                job.stalls += 1
                job.attempts = max(0, job.attempts - 1)
                failed = job.stalls > job.max_stalled and not cancel
                self._emit(job, JobEventKind.STALLED, now)
                if cancel:
                    self._end_cancelled(job, now, now + keep_failed_ms)
                elif failed:
                    job.error = stalled_error(job.stalls)
                    job.finished_at = now
                    job.expires_at = now + keep_failed_ms
                    self._place(job, JobState.FAILED)
                    self._emit(job, JobEventKind.FAILED, now, job.error)
                else:
                    self._place(job, JobState.WAITING)
                stalled.append(StalledJob(job.id, job.queue, job.task, failed))
        return stalled

    async def purge_expired(self, now: int) -> int:
        with self._lock:
            expired = [
                j.id
                for j in self._jobs.values()
                if j.state.is_finished and j.expires_at is not None and j.expires_at <= now
            ]
            for job_id in expired:
                self._delete(self._jobs[job_id])
        return len(expired)

    # -- reads and administration -----------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.record()

    async def logs(self, job_id: str) -> list[LogLine]:
        with self._lock:
            job = self._jobs.get(job_id)
            return [] if job is None else list(job.logs)

    async def list_jobs(
        self, queue: str | None, state: JobState, offset: int, limit: int
    ) -> list[JobRecord]:
        with self._lock:
            jobs = [
                j
                for j in self._jobs.values()
                if j.state is state and (queue is None or j.queue == queue)
            ]
            jobs.sort(key=lambda j: (j.created_at, j.seq), reverse=True)
            return [j.record() for j in jobs[offset : offset + limit]]

    async def counts(self) -> dict[str, dict[JobState, int]]:
        with self._lock:
            counts: dict[str, dict[JobState, int]] = {
                q: dict.fromkeys(JobState, 0) for q in self._known_queues
            }
            for job in self._jobs.values():
                counts[job.queue][job.state] += 1
        return counts

    async def oldest_waiting(self) -> dict[str, int]:
        oldest: dict[str, int] = {}
        with self._lock:
            for job in self._jobs.values():
                if job.state is JobState.WAITING:
                    oldest[job.queue] = min(oldest.get(job.queue, job.run_at), job.run_at)
        return oldest

    async def queues(self) -> list[QueueInfo]:
        with self._lock:
            names = sorted(self._known_queues | self._paused)
            return [QueueInfo(name, name in self._paused) for name in names]

    async def set_paused(self, queue: str, paused: bool) -> None:
        with self._lock:
            self._known_queues.add(queue)
            if paused:
                self._paused.add(queue)
            else:
                self._paused.discard(queue)

    async def retry(self, job_id: str, now: int) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in (JobState.FAILED, JobState.CANCELLED):
                return False
            job.attempts = 0
            job.stalls = 0
            job.run_at = now
            job.finished_at = None
            job.expires_at = None
            job.result = None
            job.error = None
            self._place(job, JobState.WAITING_CHILDREN if self._awaits(job) else JobState.WAITING)
            return True

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return CancelResult.MISSING
            if job.state in FINISHED_STATES:
                return CancelResult.FINISHED
            if job.state is JobState.ACTIVE:
                job.cancel_requested = True
                return CancelResult.REQUESTED
            self._end_cancelled(job, now, now + keep_ms)
            return CancelResult.CANCELLED

    async def remove(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state is JobState.ACTIVE:
                raise ConflictError(f"job {job_id} is active; cancel it first")
            if self._reports(job):
                raise ConflictError(f"job {job_id} is a pending flow child; cancel it first")
            self._delete(job)
            return True

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        if state is JobState.ACTIVE:
            raise ConflictError("active jobs cannot be cleaned; they are held by workers")
        with self._lock:
            doomed = [
                j
                for j in self._jobs.values()
                if j.queue == queue
                and j.state is state
                and (j.finished_at or j.created_at) < before
            ]
            doomed.sort(key=lambda j: j.seq)
            for job in doomed[:limit]:
                if self._reports(job):
                    raise ConflictError(f"job {job.id} is a pending flow child; cancel it first")
            for job in doomed[:limit]:
                self._delete(job)
        return min(len(doomed), limit)

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        with self._lock:
            self._workers[worker.id] = (worker, now_ms() + ttl_ms)

    async def unregister(self, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        now = now_ms()
        with self._lock:
            return [w for w, until in self._workers.values() if until > now]
