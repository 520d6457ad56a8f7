"""The metrics history in this process's memory, under the state's lock."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.history import HOUR, HistoryRow, hour_kept, totals_from_rows
from conveyor.stores.memory.state import MemoryState

Table = dict[tuple[str, tuple[str, ...], int], int]


class MemoryHistory:
    """A :class:`~conveyor.stores.history.MetricsHistory` over a memory state."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add(self, rows: Sequence[HistoryRow]) -> None:
        minutes, hours = self._state.history, self._state.history_hours
        with self._state.lock:
            for row in rows:
                for table, at in ((minutes, row.minute), (hours, row.minute // HOUR)):
                    key = (row.kind, row.labels, at)
                    table[key] = table.get(key, 0) + row.value

    async def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int, step: int = 1
    ) -> list[HistoryRow]:
        wanted = set(kinds)
        with self._state.lock:
            if step == HOUR:
                first, last = -(-since_minute // HOUR), until_minute // HOUR
                found = [
                    HistoryRow(kind, labels, hour * HOUR, value)
                    for (kind, labels, hour), value in self._state.history_hours.items()
                    if kind in wanted and first <= hour <= last
                ]
            else:
                found = [
                    HistoryRow(kind, labels, minute, value)
                    for (kind, labels, minute), value in self._state.history.items()
                    if kind in wanted and since_minute <= minute <= until_minute
                ]
        found.sort(key=lambda r: (r.kind, r.minute, r.labels))
        return found

    async def totals(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> dict[tuple[str, tuple[str, ...]], int]:
        return await totals_from_rows(self, kinds, since_minute, until_minute)

    async def trim(self, before_minute: int) -> int:
        minutes, hours = self._state.history, self._state.history_hours
        with self._state.lock:
            old = [key for key in minutes if key[2] < before_minute]
            for key in old:
                del minutes[key]
            for key in [key for key in hours if not hour_kept(key[2], before_minute)]:
                del hours[key]
        return len(old)
