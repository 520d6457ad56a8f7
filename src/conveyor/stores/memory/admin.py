"""Reads and administration of the memory job store, and the worker registry."""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.base import (
    FINISHED_STATES,
    CancelResult,
    Cleaned,
    JobRecord,
    JobState,
    LogLine,
    QueueInfo,
    RemoveResult,
    WorkerInfo,
)
from conveyor.stores.memory.state import MemoryState, StoredJob


class MemoryJobAdmin:
    """Reads and administration of :class:`~conveyor.stores.memory.jobs.MemoryJobStore`."""

    _state: MemoryState
    _clock: Clock

    async def get(self, job_id: str) -> JobRecord | None:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            return None if job is None else job.record()

    async def logs(self, job_id: str) -> list[LogLine]:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            return [] if job is None else list(job.logs)

    async def counts(self) -> dict[str, dict[JobState, int]]:
        state = self._state
        with state.lock:
            counts: dict[str, dict[JobState, int]] = {
                q: dict.fromkeys(JobState, 0) for q in state.known_queues
            }
            for job in state.jobs.values():
                counts[job.queue][job.state] += 1
        return counts

    async def oldest_waiting(self) -> dict[str, int]:
        """Per queue, the ``run_at`` of its earliest-created waiting job."""
        first: dict[str, StoredJob] = {}
        with self._state.lock:
            for job in self._state.jobs.values():
                if job.state is not JobState.WAITING:
                    continue
                seen = first.get(job.queue)
                if seen is None or (job.created_at, job.id) < (seen.created_at, seen.id):
                    first[job.queue] = job
        return {queue: job.run_at for queue, job in first.items()}

    async def queues(self) -> list[QueueInfo]:
        state = self._state
        with state.lock:
            names = sorted(state.known_queues | state.paused)
            return [QueueInfo(name, name in state.paused) for name in names]

    async def set_paused(self, queue: str, paused: bool) -> None:
        state = self._state
        with state.lock:
            state.known_queues.add(queue)
            if paused:
                state.paused.add(queue)
            else:
                state.paused.discard(queue)

    async def retry(self, job_id: str, now: int) -> bool:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            if job is None or job.state not in (JobState.FAILED, JobState.CANCELLED):
                return False
            self._retry(job, now)
            return True

    async def retry_failed(self, queue: str, limit: int, now: int) -> int:
        with self._state.lock:
            jobs = self._state.oldest_finished(queue, JobState.FAILED, limit)
            for job in jobs:
                self._retry(job, now)
        return len(jobs)

    def _retry(self, job: StoredJob, now: int) -> None:
        job.attempts = 0
        job.stalls = 0
        job.run_at = now
        job.finished_at = None
        job.expires_at = None
        job.result = None
        job.error = None
        waits = self._state.flows.awaits_children(job.id)
        self._state.place(job, JobState.WAITING_CHILDREN if waits else JobState.WAITING)

    async def promote(self, job_id: str, now: int) -> bool:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            if job is None or job.state is not JobState.SCHEDULED:
                return False
            job.run_at = now
            self._state.place(job, JobState.WAITING)
            return True

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        state = self._state
        with state.lock:
            job = state.jobs.get(job_id)
            if job is None:
                return CancelResult.MISSING
            if job.state in FINISHED_STATES:
                return CancelResult.FINISHED
            if job.state is JobState.ACTIVE:
                job.cancel_requested = True
                return CancelResult.REQUESTED
            state.finish(job, JobState.CANCELLED, now, now + keep_ms, None)
            return CancelResult.CANCELLED

    async def remove(self, job_id: str) -> RemoveResult:
        state = self._state
        with state.lock:
            job = state.jobs.get(job_id)
            if job is None:
                return RemoveResult.MISSING
            if job.state is JobState.ACTIVE:
                return RemoveResult.ACTIVE
            if state.flows.reports_to_parent(job.id):
                return RemoveResult.PENDING_CHILD
            state.delete(job)
            return RemoveResult.REMOVED

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> Cleaned:
        data = self._state
        with data.lock:
            doomed = self._doomed(queue, state, before, limit)
            for job in doomed:
                if data.flows.reports_to_parent(job.id):
                    return Cleaned(0, job.id)
            for job in doomed:
                data.delete(job)
        return Cleaned(len(doomed))

    async def count_clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        with self._state.lock:
            return len(self._doomed(queue, state, before, limit))

    def _doomed(self, queue: str, state: JobState, before: int, limit: int) -> list[StoredJob]:
        doomed = [
            j
            for j in self._state.jobs.values()
            if j.queue == queue and j.state is state and (j.finished_at or j.created_at) < before
        ]
        doomed.sort(key=lambda j: j.seq)
        return doomed[:limit]

    # -- the worker registry ---------------------------------------------------

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        with self._state.lock:
            self._state.workers[worker.id] = (worker, self._clock.now_ms() + ttl_ms)

    async def unregister(self, worker_id: str) -> None:
        with self._state.lock:
            self._state.workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        now = self._clock.now_ms()
        with self._state.lock:
            return [w for w, until in self._state.workers.values() if until > now]
