"""Queue-level controls as producers, operators and workers use them (``app.jobs``).

- ``app.jobs.set_queue_limits(queue, concurrency=N, rate=(N, seconds))``: global
  concurrency and rate of a queue, stored with the queue, so every worker
  process obeys the same ones.
- ``@app.task(concurrency=N)``: at most N jobs of the task run at once across
  all workers (in its queue); workers write the declared limits when they start.
- ``raise QueueBackoff(seconds)`` in a task, or ``app.jobs.backoff_queue``: the
  queue claims nothing until then; the raising job goes back without counting
  the attempt.

The stores enforce all of it inside their claim step (``stores/limits.py``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.clock import Clock
from conveyor.errors import MAX_BACKOFF_SECONDS, BadInputError
from conveyor.stores.base import ClaimedJob
from conveyor.stores.limits import LimitsStore, QueueLimits

if TYPE_CHECKING:
    from conveyor.jobs.task import Task

MAX_LIMIT = 1_000_000
MIN_PERIOD_SECONDS = 0.001
MAX_PERIOD_SECONDS = 86_400.0


def check_concurrency(value: object, what: str = "concurrency") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise BadInputError(f"{what} must be an integer in 1..{MAX_LIMIT} or None, got {value!r}")
    return value


def check_rate(rate: object) -> tuple[int, int] | None:
    """``(N, period_seconds)`` -> ``(N, period_ms)``; None means no rate limit."""
    if rate is None:
        return None
    if not isinstance(rate, tuple) or len(rate) != 2:
        raise BadInputError(f"rate must be a (jobs, period_seconds) tuple, got {rate!r}")
    count, period = rate
    check_concurrency(count, "the rate's job count")
    if (
        isinstance(period, bool)
        or not isinstance(period, int | float)
        or not math.isfinite(period)
        or not MIN_PERIOD_SECONDS <= period <= MAX_PERIOD_SECONDS
    ):
        raise BadInputError(
            f"the rate's period must be {MIN_PERIOD_SECONDS}..{MAX_PERIOD_SECONDS:.0f} seconds,"
            f" got {period!r}"
        )
    assert isinstance(count, int)
    return count, round(period * 1000)


def check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue:
        raise BadInputError(f"queue must be a non-empty string, got {queue!r}")
    return queue


class QueueControls:
    """Reads and writes queue limits and back-offs in the app's store."""

    def __init__(
        self, store: LimitsStore, clock: Clock, opener: Callable[[], Awaitable[None]]
    ) -> None:
        self._store = store
        self._clock = clock
        self._open = opener

    async def _limits(self) -> LimitsStore:
        await self._open()
        return self._store

    async def set_queue_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        rate: tuple[int, float] | None = None,
    ) -> None:
        check_queue(queue)
        checked = check_rate(rate)
        limit = check_concurrency(concurrency)
        count, period_ms = checked if checked is not None else (None, 1000)
        await (await self._limits()).set_limits(queue, limit, count, period_ms)

    async def queue_limits(self, queue: str) -> QueueLimits:
        return await (await self._limits()).get_limits(check_queue(queue))

    async def backoff_queue(self, queue: str, seconds: float) -> None:
        check_queue(queue)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_BACKOFF_SECONDS
        ):
            raise BadInputError(f"seconds must be 0..{MAX_BACKOFF_SECONDS}, got {seconds!r}")
        until = self._clock.now_ms() + round(seconds * 1000)
        await (await self._limits()).backoff(queue, until, [], 0)

    async def back_off_job(self, job: ClaimedJob, seconds: float, keep_ms: int) -> int:
        """Back ``job``'s queue off and give the job back, in one store step."""
        until = self._clock.now_ms() + round(seconds * 1000)
        store = await self._limits()
        return await store.backoff(job.queue, until, [(job.id, job.token)], keep_ms)

    async def declare_tasks(self, tasks: Iterable[Task[Any, Any]], queues: Sequence[str]) -> None:
        """Write the per-task limits of ``tasks`` in the queues served (what changed only)."""
        store = await self._limits()
        by_queue: dict[str, dict[str, int | None]] = {}
        for task in tasks:
            if task.queue in queues:
                by_queue.setdefault(task.queue, {})[task.name] = task.concurrency
        for queue, wanted in by_queue.items():
            stored = (await store.get_limits(queue)).tasks
            for name, limit in wanted.items():
                if stored.get(name) != limit:
                    await store.set_task_concurrency(queue, name, limit)
