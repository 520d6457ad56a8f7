"""The dedupe store protocol: enqueue under a debounce or throttle key.

A key (scoped to a queue) points to the job it last let in, until ``until``.
In one atomic step per batch, for each job:

- ``throttle``: while the key points to a job that still exists, nothing is
  inserted and that job is the answer; otherwise the job is inserted and the
  key points to it until ``until``.
- ``debounce``: while the key points to a job still pending (scheduled or
  waiting, not yet claimed), that job takes the new payload, options,
  priority and ``run_at`` (so it runs once, after the last of a burst);
  otherwise the job is inserted. Either way the key lasts until ``until``.

Times and windows are decided above (``jobs/dedupe.py``); stores only apply them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from conveyor.stores.base import JobStore, NewJob

DedupeMode = Literal["debounce", "throttle"]


class Dedupe(msgspec.Struct, gc=False):
    mode: DedupeMode
    key: str
    until: int


class DedupeStore(Protocol):
    async def enqueue_deduped(
        self, jobs: Sequence[tuple[NewJob, Dedupe]]
    ) -> list[tuple[str, bool]]:
        """Per job: the id of the job its key now points to, and whether it was inserted."""
        ...


def make_dedupe_store(jobs: JobStore) -> DedupeStore:
    """The dedupe store that shares ``jobs``'s connection."""
    from conveyor.stores.memory.jobs import MemoryJobStore

    if isinstance(jobs, MemoryJobStore):
        from conveyor.stores.memory.dedupe import MemoryDedupeStore

        return MemoryDedupeStore(jobs)
    from conveyor.stores.sqlite.jobs import SqliteJobStore

    if isinstance(jobs, SqliteJobStore):
        from conveyor.stores.sqlite.dedupe import SqliteDedupeStore

        return SqliteDedupeStore(jobs)
    from conveyor.stores.redis.jobs import RedisJobStore

    if isinstance(jobs, RedisJobStore):
        from conveyor.stores.redis.dedupe import RedisDedupeStore

        return RedisDedupeStore(jobs)
    raise TypeError(f"no dedupe store for {type(jobs).__name__}")
