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


class EventStore(Protocol):
    async def save_group(self, group: str, spec: bytes, now: int) -> None:
        """Record ``group``'s subscriptions (opaque JSON from the bus), replacing the old."""

    async def groups(self) -> dict[str, bytes]:
        """Every recorded group and its subscriptions."""
        ...

    async def drop_group(self, group: str) -> bool:
        """Forget ``group``'s subscriptions; False if it was not recorded."""
        ...

    async def processed(self, group: str, event_ids: Sequence[str], now: int) -> set[str]:
        """Which of ``event_ids`` ``group`` recorded as processed (records still live)."""
        ...

    async def mark_processed(
        self, group: str, event_ids: Sequence[str], expires_at: int, now: int
    ) -> None:
        """Record ``event_ids`` as processed by ``group`` until ``expires_at``; drop expired."""
