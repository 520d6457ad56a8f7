"""MemoryEventStore: event groups and processed ids in dicts (tests, ephemeral)."""

from __future__ import annotations

from collections.abc import Sequence


class MemoryEventStore:
    def __init__(self) -> None:
        self._groups: dict[str, list[str]] = {}
        self._processed: dict[str, dict[str, int]] = {}

    async def save_group(self, group: str, types: Sequence[str], now: int) -> None:
        self._groups[group] = sorted(set(types))

    async def groups(self) -> dict[str, list[str]]:
        return {group: list(types) for group, types in self._groups.items()}

    async def drop_group(self, group: str) -> bool:
        return self._groups.pop(group, None) is not None

    async def is_processed(self, group: str, event_id: str, now: int) -> bool:
        return self._processed.get(group, {}).get(event_id, 0) > now

    async def mark_processed(self, group: str, event_id: str, expires_at: int, now: int) -> None:
        seen = self._processed.setdefault(group, {})
        seen[event_id] = expires_at
        if len(seen) % 1024 == 0:
            for key in [k for k, until in seen.items() if until <= now]:
                del seen[key]
