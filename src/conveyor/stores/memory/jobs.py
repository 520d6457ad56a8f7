"""The job store of a memory backend: tests and ephemeral use, same semantics as the others.

Each method takes the state's lock for one step (``state.py`` holds the data
and the moves). The worker's steps are here; reads and administration in
``admin.py``, listings and searches in ``pages.py``.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Sequence

from conveyor.stores.base import (
    ClaimedJob,
    JobEvent,
    JobEventKind,
    JobState,
    LeaseStatus,
    NewJob,
    Outcome,
    ProgressUpdate,
    StalledJob,
    released_state,
    stalled_error,
)
from conveyor.stores.limits import earliest
from conveyor.stores.memory.admin import MemoryJobAdmin
from conveyor.stores.memory.pages import MemoryPages
from conveyor.stores.memory.state import MemoryState, StoredJob
from conveyor.stores.notify import read_when_ready


class MemoryJobStore(MemoryJobAdmin, MemoryPages):
    """A :class:`~conveyor.stores.base.JobStore` held in this process's memory."""

    def exchanges_in_flight(self, concurrency: int) -> int:
        return 1

    def __init__(self, state: MemoryState, url: str = "memory://") -> None:
        self.url = url
        self._state = state
        self._clock = state.clock

    # -- writes ------------------------------------------------------------

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        state = self._state
        with state.lock:
            now = self._clock.now_ms()
            return [state.insert(new, now) for new in jobs]

    async def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        with self._state.lock:
            now = self._clock.now_ms()
            accepted = [self._finish(outcome, now) for outcome in finished]
            claimed = self._claim(queues, claim, worker, lease_ms, now) if claim > 0 else []
        return accepted, claimed

    def _finish(self, outcome: Outcome, now: int) -> bool:
        state = self._state
        job = state.holding(outcome.id, outcome.token)
        if job is None:
            return False
        if outcome.progress is not None:
            job.progress = outcome.progress
        job.error = outcome.error
        cancel = job.cancel_requested
        state.clear_lease(job)
        if outcome.state in (JobState.WAITING, JobState.SCHEDULED):
            job.run_at = outcome.run_at
            if cancel:  # a job whose cancellation was asked for is not retried
                state.finish(job, JobState.CANCELLED, now, outcome.expires_at, None)
            else:
                state.place(job, released_state(outcome.run_at, now))
                state.emit(job, JobEventKind.RETRYING, now, outcome.error)
            return True
        job.result = outcome.result
        job.finished_at = outcome.finished_at
        job.expires_at = outcome.expires_at
        state.place(job, outcome.state)
        state.emit(job, JobEventKind(outcome.state.value), now, outcome.error)
        if outcome.keep is not None:
            state.trim(job.queue, outcome.state, outcome.keep)
        return True

    def _claim(
        self, queues: Sequence[str], limit: int, worker: str, lease_ms: int, now: int
    ) -> list[ClaimedJob]:
        state = self._state
        token = secrets.token_hex(8)
        claimed: list[ClaimedJob] = []
        state.limits.wake_at = None
        for queue in queues:
            if queue in state.paused:
                continue
            state.promote_due(queue, now)
            heap = state.ready[queue]
            gate = state.limits.gate(queue, limit - len(claimed), now, heap, state.is_ready)
            state.limits.wake_at = earliest(state.limits.wake_at, gate.wake_at)
            taken = 0
            while heap and taken < gate.room:
                entry = heapq.heappop(heap)
                if not state.is_ready(entry):
                    continue
                job = state.jobs[entry[3]]
                if not gate.admits(job.task):
                    state.limits.park(queue, job.task, entry)
                    continue
                taken += 1
                claimed.append(self._claim_one(job, token, worker, now + lease_ms, now))
            state.limits.record(queue, now, taken)
            if len(claimed) >= limit:
                break
        return claimed

    def _claim_one(
        self, job: StoredJob, token: str, worker: str, lease_until: int, now: int
    ) -> ClaimedJob:
        job.attempts += 1
        job.fence += 1
        job.token = token
        job.worker = worker
        job.lease_until = lease_until
        job.started_at = now
        self._state.place(job, JobState.ACTIVE)
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
        wake_at = self._state.limits.wake_at
        if wake_at is not None:
            poll_interval = min(poll_interval, max(0.001, (wake_at - self._clock.now_ms()) / 1000))
        await self._clock.sleep(poll_interval)

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        state = self._state
        statuses: dict[str, LeaseStatus] = {}
        with state.lock:
            until = self._clock.now_ms() + lease_ms
            for job_id, token in leases:
                job = state.holding(job_id, token)
                if job is None:
                    statuses[job_id] = LeaseStatus.LOST
                    continue
                job.lease_until = until
                if job.cancel_requested:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        with self._state.lock:
            return self._state.release(list(leases), self._clock.now_ms(), keep_ms)

    async def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        state = self._state
        statuses: dict[str, LeaseStatus] = {}
        with state.lock:
            now = self._clock.now_ms()
            for update in updates:
                job = state.holding(update.id, update.token)
                if job is None:
                    statuses[update.id] = LeaseStatus.LOST
                    continue
                if update.progress is not None:
                    job.progress = update.progress
                    state.emit(job, JobEventKind.PROGRESS, now, update.progress)
                job.logs.extend(update.logs)
                while len(job.logs) > max_log_lines:
                    job.logs.popleft()
                if job.cancel_requested:
                    statuses[update.id] = LeaseStatus.CANCEL
        return statuses

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        state = self._state
        statuses: dict[str, LeaseStatus] = {}
        with state.lock:
            for job_id, token in leases:
                job = state.holding(job_id, token)
                if job is None:
                    statuses[job_id] = LeaseStatus.LOST
                elif job.cancel_requested:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    async def events_start(self) -> str:
        with self._state.lock:
            return str(self._state.event_seq)

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        async def read() -> tuple[str, list[JobEvent]]:
            return self._events_after(int(cursor), queues, limit)

        return await read_when_ready(read, self._state.notifier, block, block)

    def _events_after(
        self, after: int, queues: Sequence[str] | None, limit: int
    ) -> tuple[str, list[JobEvent]]:
        wanted = None if queues is None else set(queues)
        found: list[JobEvent] = []
        with self._state.lock:
            last = after
            for seq, event in self._state.events:
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
        state = self._state
        stalled: list[StalledJob] = []
        with state.lock:
            for job in list(state.jobs.values()):
                if job.state is not JobState.ACTIVE or (job.lease_until or 0) >= now:
                    continue
                cancel = job.cancel_requested
                state.clear_lease(job)
                job.stalls += 1
                job.attempts = max(0, job.attempts - 1)
                failed = job.stalls > job.max_stalled and not cancel
                state.emit(job, JobEventKind.STALLED, now)
                if cancel:
                    state.finish(job, JobState.CANCELLED, now, now + keep_failed_ms, None)
                elif failed:
                    error = stalled_error(job.stalls)
                    state.finish(job, JobState.FAILED, now, now + keep_failed_ms, error)
                else:
                    state.place(job, JobState.WAITING)
                stalled.append(StalledJob(job.id, job.queue, job.task, failed))
        return stalled

    async def purge_expired(self, now: int) -> int:
        state = self._state
        with state.lock:
            expired = [
                j
                for j in state.jobs.values()
                if j.state.is_finished and j.expires_at is not None and j.expires_at <= now
            ]
            for job in expired:
                state.delete(job)
        return len(expired)
