"""Rate limits in memory: a :class:`RateTable` under the backend's lock."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.memory.state import MemoryState
from conveyor.stores.ratelimit import Checked, Hit, RateTable


class MemoryRateLimitStore:
    """A :class:`~conveyor.stores.ratelimit.RateLimitStore` in this process's memory.

    Each step holds the state's lock (the sync facade's thread shares the data).
    """

    DEFAULT_BUDGET = 0.05

    def __init__(self, state: MemoryState, budget: float | None = None) -> None:
        self.budget = budget or self.DEFAULT_BUDGET  # never waited on: one lock, no I/O
        self._state = state
        self._table: RateTable = state.rate_limits

    async def check(self, hits: Sequence[Hit], token: str) -> Checked:
        with self._state.lock:
            return self._table.check(hits, self._state.clock.now_ms(), token, charge=True)

    async def peek(self, hits: Sequence[Hit]) -> Checked:
        with self._state.lock:
            return self._table.check(hits, self._state.clock.now_ms(), "", charge=False)

    async def release(self, hits: Sequence[Hit], token: str) -> None:
        with self._state.lock:
            self._table.release(hits, token)

    async def reset(self, keys: Sequence[tuple[str, str]]) -> None:
        with self._state.lock:
            self._table.reset(keys)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
