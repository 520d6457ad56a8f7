"""Listings, searches and timelines of the memory job store.

The memory store keeps no ordered indexes: each call filters and sorts the
jobs it holds (it serves tests and ephemeral use), then walks them the way an
indexed store walks its driving index, with the same bound on candidates
(``stores/search.py``), so pages end where they end on the other stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from conveyor.stores.base import JobEvent, JobState, Page
from conveyor.stores.memory.state import MemoryState, StoredJob
from conveyor.stores.search import (
    JobQuery,
    Position,
    decode_cursor,
    encode_cursor,
    walk,
)


def _by_time(job: StoredJob) -> Position:
    return Position(job.created_at, job.id)


def _by_id(job: StoredJob) -> Position:
    return Position(0, job.id)


class MemoryPages:
    """The listing and search steps of :class:`~conveyor.stores.memory.jobs.MemoryJobStore`."""

    _state: MemoryState

    async def list_page(
        self, queue: str | None, state: JobState, cursor: str | None, limit: int
    ) -> Page:
        def wanted(job: StoredJob) -> bool:
            return job.state is state and (queue is None or job.queue == queue)

        with self._state.lock:
            return self._page(wanted, _by_time, cursor, limit, lambda _: True)

    async def search(self, query: JobQuery, cursor: str | None, limit: int) -> Page:
        kind, value = query.driver()
        others = query.other_keys()

        def matches(job: StoredJob) -> bool:
            return (
                (query.queue is None or job.queue == query.queue)
                and (query.state is None or job.state is query.state)
                and (query.task is None or job.task == query.task)
                and (query.job_id_prefix is None or job.id.startswith(query.job_id_prefix))
                and all(key in job.keys for key in others)
            )

        with self._state.lock:
            if kind == "id":
                job = self._state.jobs.get(value)
                found = [job.record()] if job is not None and matches(job) else []
                return Page(found)
            driving: Callable[[StoredJob], bool]
            if kind == "prefix":
                driving = lambda job: job.id.startswith(value)  # noqa: E731
                return self._page(driving, _by_id, cursor, limit, matches)
            if kind == "key":
                driving = lambda job: value in job.keys  # noqa: E731
            else:
                driving = lambda job: job.task == value  # noqa: E731
            return self._page(driving, _by_time, cursor, limit, matches)

    def _page(
        self,
        driving: Callable[[StoredJob], bool],
        position: Callable[[StoredJob], Position],
        cursor: str | None,
        limit: int,
        matches: Callable[[StoredJob], bool],
    ) -> Page:
        """Walk the jobs ``driving`` selects, newest first by ``position``, after ``cursor``."""
        after = decode_cursor(cursor)
        ordered: Iterable[StoredJob] = sorted(
            (j for j in self._state.jobs.values() if driving(j)),
            key=lambda j: position(j).key(),
            reverse=True,
        )
        if after is not None:
            ordered = (j for j in ordered if position(j).key() < after.key())
        found, stop = walk(ordered, position, matches, limit)
        return Page([j.record() for j in found], None if stop is None else encode_cursor(stop))

    async def events_of(self, job_id: str, limit: int) -> list[JobEvent]:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            if job is None or limit <= 0:
                return []
            return list(job.timeline)[-limit:]
