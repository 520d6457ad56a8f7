"""The event store protocol: what the event bus keeps beside the job store.

Deliveries themselves are jobs (see ``conveyor/events/bus.py``); this store
only holds the two things jobs cannot: which groups subscribe to which event
types (so a publisher that never imported a consumer's handlers still fans
out to it), and the ids of events a group has processed (the idempotency
helper). Each implementation lives beside its job store and shares its
connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.stores.base import JobStore


class EventStore(Protocol):
    async def save_group(self, group: str, types: Sequence[str], now: int) -> None:
        """Record that ``group`` subscribes to ``types`` (replacing its earlier set)."""

    async def groups(self) -> dict[str, list[str]]:
        """Every recorded group and the event types it subscribes to."""
        ...

    async def drop_group(self, group: str) -> bool:
        """Forget ``group``'s subscriptions; False if it was not recorded."""
        ...

    async def is_processed(self, group: str, event_id: str, now: int) -> bool:
        """Whether ``group`` recorded ``event_id`` as processed (and the record is live)."""
        ...

    async def mark_processed(self, group: str, event_id: str, expires_at: int, now: int) -> None:
        """Record ``event_id`` as processed by ``group`` until ``expires_at``; drop expired ones."""


def make_event_store(jobs: JobStore) -> EventStore:
    """The event store that lives beside ``jobs`` and shares its connection."""
    from conveyor.stores.memory.jobs import MemoryJobStore
    from conveyor.stores.sqlite.jobs import SqliteJobStore

    if isinstance(jobs, MemoryJobStore):
        from conveyor.stores.memory.events import MemoryEventStore

        return MemoryEventStore()
    if isinstance(jobs, SqliteJobStore):
        from conveyor.stores.sqlite.events import SqliteEventStore

        return SqliteEventStore(jobs.db)
    from conveyor.stores.redis.jobs import RedisJobStore

    if isinstance(jobs, RedisJobStore):
        from conveyor.stores.redis.events import RedisEventStore

        return RedisEventStore(jobs)
    raise TypeError(f"no event store for {type(jobs).__name__}")
