"""MemoryEventStore: event groups and processed ids in dicts (tests, ephemeral)."""

from __future__ import annotations

from collections.abc import Sequence

TRIM_EVERY = 1024


class MemoryEventStore:
    def __init__(self) -> None:
        self._groups: dict[str, bytes] = {}
        self._processed: dict[str, dict[str, int]] = {}
        self._marks = 0

    async def save_group(self, group: str, spec: bytes, now: int) -> None:
        self._groups[group] = spec

    async def groups(self) -> dict[str, bytes]:
        return dict(sorted(self._groups.items()))

    async def drop_group(self, group: str) -> bool:
        return self._groups.pop(group, None) is not None

    async def processed(self, group: str, event_ids: Sequence[str], now: int) -> set[str]:
        seen = self._processed.get(group, {})
        return {event_id for event_id in event_ids if seen.get(event_id, 0) > now}

    async def mark_processed(
        self, group: str, event_ids: Sequence[str], expires_at: int, now: int
    ) -> None:
        seen = self._processed.setdefault(group, {})
        for event_id in event_ids:
            seen[event_id] = expires_at
        self._marks += 1
        if self._marks % TRIM_EVERY == 0:
            for key in [k for k, until in seen.items() if until <= now]:
                del seen[key]
