"""Dead letters: deliveries that failed their last attempt, kept to inspect and replay.

A dead letter is a failed job of a group's queue, so listing, replaying
(retry-from-failed: back to waiting with its attempts reset) and purging
are the job engine's administration applied to ``events.<group>``.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import msgspec

from conveyor.errors import ConflictError, NotFoundError
from conveyor.events.envelope import GROUP_QUEUE_PREFIX, Envelope, EventMeta, group_queue
from conveyor.jobs.client import JobClient
from conveyor.jobs.job import Job, JobError
from conveyor.stores.base import JobState

PAGE = 500


class DeadEvent(msgspec.Struct, frozen=True):
    """One event of a dead letter: its metadata and its data as stored (JSON)."""

    meta: EventMeta
    data: Any


class DeadLetter(msgspec.Struct, frozen=True):
    """One dead-lettered delivery: its event (or batch of events) and why it failed."""

    id: str
    """The delivery's id, ``<event_id>@<group>`` (pass it to ``replay``)."""
    group: str
    events: list[DeadEvent]
    """The delivery's events: one, or a batch."""
    attempts: int
    error: JobError | None
    failed_at: datetime | None

    @property
    def meta(self) -> EventMeta:
        """The (first) event's metadata."""
        return self.events[0].meta

    @property
    def data(self) -> Any:
        """The (first) event's data."""
        return self.events[0].data


def dead_letter(job: Job[Any]) -> DeadLetter:
    (payload,), _ = job.args
    group = job.queue[len(GROUP_QUEUE_PREFIX) :]
    events = []
    for envelope in payload if isinstance(payload, list) else [payload]:
        wire = msgspec.convert(envelope, Envelope)
        events.append(DeadEvent(wire.meta(attempt=job.attempts, group=group), wire.data))
    return DeadLetter(
        id=job.id,
        group=group,
        events=events,
        attempts=job.attempts,
        error=job.error,
        failed_at=job.finished_at,
    )


class DeadLetters:
    """``app.events.dead_letters``: list, inspect, replay and purge."""

    def __init__(self, jobs: JobClient) -> None:
        self._jobs = jobs

    async def groups(self) -> builtins.list[str]:
        """Groups that have a queue in the store."""
        counts = await self._jobs.counts()
        return sorted(q[len(GROUP_QUEUE_PREFIX) :] for q in counts if _is_group_queue(q))

    async def count(self) -> dict[str, int]:
        """Dead letters per group."""
        counts = await self._jobs.counts()
        return {
            queue[len(GROUP_QUEUE_PREFIX) :]: by_state.get(JobState.FAILED, 0)
            for queue, by_state in sorted(counts.items())
            if _is_group_queue(queue)
        }

    async def list(
        self, group: str | None = None, *, offset: int = 0, limit: int = 50
    ) -> builtins.list[DeadLetter]:
        """Dead letters of ``group`` (or of every group), newest first."""
        groups = [group] if group is not None else await self.groups()
        found: builtins.list[Job[Any]] = []
        for name in groups:
            found += await self._jobs.list(
                JobState.FAILED, group_queue(name), offset=0, limit=min(offset + limit, 1000)
            )
        found.sort(key=lambda job: job.finished_at or job.created_at, reverse=True)
        return [dead_letter(job) for job in found[offset : offset + limit]]

    async def get(self, delivery_id: str) -> DeadLetter:
        job = await self._jobs.get(delivery_id)
        if not _is_group_queue(job.queue) or job.status is not JobState.FAILED:
            raise NotFoundError(f"no dead letter with id {delivery_id!r}")
        return dead_letter(job)

    async def replay(self, delivery_id: str) -> None:
        """Send one dead letter back to its group, with its attempts reset."""
        await self.get(delivery_id)
        await self._jobs.retry(delivery_id)

    async def replay_all(self, group: str | None = None) -> int:
        """Send every dead letter of ``group`` (or of every group) back; returns how many."""
        replayed = 0
        for name in [group] if group is not None else await self.groups():
            # Take the ids first: a replayed poison event may fail again while we page.
            ids: builtins.list[str] = []
            while page := await self._jobs.list(
                JobState.FAILED, group_queue(name), offset=len(ids), limit=PAGE
            ):
                ids += [job.id for job in page]
            for delivery_id in ids:
                try:
                    await self._jobs.retry(delivery_id)
                    replayed += 1
                except (ConflictError, NotFoundError):  # replayed or removed meanwhile
                    pass
        return replayed

    async def purge(self, group: str | None = None, older_than: float = 0.0) -> int:
        """Delete dead letters (older than ``older_than`` seconds); returns how many."""
        purged = 0
        for name in [group] if group is not None else await self.groups():
            while deleted := await self._jobs.clean(
                group_queue(name), JobState.FAILED, older_than, limit=10_000
            ):
                purged += deleted
        return purged


def _is_group_queue(queue: str) -> bool:
    return queue.startswith(GROUP_QUEUE_PREFIX)
