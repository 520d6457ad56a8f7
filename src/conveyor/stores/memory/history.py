"""The metrics history in this process's memory, under the state's lock."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.history import HistoryRow
from conveyor.stores.memory.state import MemoryState


class MemoryHistory:
    """A :class:`~conveyor.stores.history.MetricsHistory` over a memory state."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add(self, rows: Sequence[HistoryRow]) -> None:
        table = self._state.history
        with self._state.lock:
            for row in rows:
                key = (row.kind, row.labels, row.minute)
                table[key] = table.get(key, 0) + row.value

    async def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> list[HistoryRow]:
        wanted = set(kinds)
        with self._state.lock:
            found = [
                HistoryRow(kind, labels, minute, value)
                for (kind, labels, minute), value in self._state.history.items()
                if kind in wanted and since_minute <= minute <= until_minute
            ]
        found.sort(key=lambda r: (r.kind, r.minute, r.labels))
        return found

    async def trim(self, before_minute: int) -> int:
        table = self._state.history
        with self._state.lock:
            old = [key for key in table if key[2] < before_minute]
            for key in old:
                del table[key]
        return len(old)
