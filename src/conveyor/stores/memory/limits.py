"""The queue-limits store of a memory backend (the claim obeys them in ``gate.py``)."""

from __future__ import annotations

from conveyor.stores.limits import QueueLimits
from conveyor.stores.memory.state import MemoryState


class MemoryLimitsStore:
    """A :class:`~conveyor.stores.limits.LimitsStore` over a memory state."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def set_limits(
        self, queue: str, concurrency: int | None, rate: int | None, period_ms: int
    ) -> None:
        limits = self._state.limits
        with self._state.lock:
            old = limits.limits.get(queue, QueueLimits())
            limits.limits[queue] = QueueLimits(
                concurrency, rate, period_ms, old.tasks, old.backoff_until
            )

    async def set_task_concurrency(self, queue: str, task: str, limit: int | None) -> None:
        state = self._state
        limits = state.limits
        with state.lock:
            old = limits.limits.get(queue, QueueLimits())
            tasks = {name: cap for name, cap in old.tasks.items() if name != task}
            if limit is not None:
                tasks[task] = limit
            else:
                limits.unpark_all(queue, task, state.ready[queue])
            limits.limits[queue] = QueueLimits(
                old.concurrency, old.rate, old.period_ms, tasks, old.backoff_until
            )

    async def get_limits(self, queue: str) -> QueueLimits:
        with self._state.lock:
            return self._state.limits.limits.get(queue, QueueLimits())

    async def backoff(
        self, queue: str, until: int, leases: list[tuple[str, str]], keep_ms: int
    ) -> int:
        state = self._state
        limits = state.limits
        with state.lock:
            old = limits.limits.get(queue, QueueLimits())
            limits.limits[queue] = QueueLimits(
                old.concurrency,
                old.rate,
                old.period_ms,
                old.tasks,
                max(old.backoff_until, until),
            )
            return state.release(leases, state.clock.now_ms(), keep_ms)
