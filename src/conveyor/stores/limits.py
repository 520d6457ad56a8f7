"""Queue-level controls: the limits store protocol and what every claim obeys.

A queue's limits live in the store, beside its jobs, so every worker process
obeys the same ones, and each store enforces them inside its claim step (the
same transaction / Lua script / lock), never in the worker:

- ``concurrency``: at most N jobs of the queue active at once (all workers).
- ``rate`` / ``period_ms``: at most N claims in any ``period_ms`` window (a
  sliding log of claim times, so no window of that length holds more).
- per-task ``tasks[name]``: at most N active jobs of that task in the queue.
- ``backoff_until``: no claim at all before this time (``QueueBackoff``).

A claim that a limit stopped tells its store when the next slot opens (the
oldest logged claim leaving the window, or the end of a back-off), so idle
workers sleep exactly that long instead of polling.

Times are integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class QueueLimits(msgspec.Struct, frozen=True):
    """The controls of one queue, as stored (``app.jobs.queue_limits(queue)``)."""

    concurrency: int | None = None
    """At most this many jobs of the queue run at once, across all workers."""
    rate: int | None = None
    """At most this many jobs start per ``period_ms``, across all workers."""
    period_ms: int = 1000
    tasks: dict[str, int] = {}
    """Per task name: at most this many of its jobs run at once in this queue."""
    backoff_until: int = 0
    """No job of the queue starts before this time (ms since the epoch)."""


class LimitsStore(Protocol):
    async def set_limits(
        self, queue: str, concurrency: int | None, rate: int | None, period_ms: int
    ) -> None:
        """Replace the queue's concurrency and rate limits (None: no limit)."""
        ...

    async def set_task_concurrency(self, queue: str, task: str, limit: int | None) -> None:
        """Set (or with None remove) the per-task limit of ``task`` in ``queue``."""
        ...

    async def get_limits(self, queue: str) -> QueueLimits: ...

    async def backoff(
        self, queue: str, until: int, leases: list[tuple[str, str]], keep_ms: int
    ) -> int:
        """Stop claims from ``queue`` until ``until`` (never shortening a longer back-off)
        and, in the same step, release ``leases`` as ``JobStore.release`` does.
        Returns how many leases still held their job."""
        ...


class Gate:
    """What one claim of one queue may take: ``room`` jobs, and per limited task its free slots.

    ``wake_at`` is when a claim stopped by the rate limit or a back-off may try again
    (None when only finishing jobs can open a slot, or nothing stopped it).
    """

    __slots__ = ("rated", "room", "task_room", "wake_at")

    def __init__(
        self,
        room: int,
        wake_at: int | None = None,
        task_room: dict[str, int] | None = None,
        rated: bool = False,
    ) -> None:
        self.room = max(room, 0)
        self.wake_at = wake_at
        self.task_room = task_room
        self.rated = rated
        """Whether the claims are to be logged (the queue has a rate limit)."""

    def admits(self, task: str) -> bool:
        """Whether a job of ``task`` may be claimed now (counting it if so)."""
        if self.task_room is None or task not in self.task_room:
            return True
        if self.task_room[task] <= 0:
            return False
        self.task_room[task] -= 1
        return True

    def caps_tasks(self) -> bool:
        """Whether some limited task has fewer free slots than the claim's room."""
        return self.task_room is not None and any(
            free < self.room for free in self.task_room.values()
        )


def open_gate(
    limits: QueueLimits,
    want: int,
    now: int,
    *,
    active: int = 0,
    claims_in_window: int = 0,
    oldest_claim: int | None = None,
    task_active: dict[str, int] | None = None,
) -> Gate:
    """Apply ``limits`` to a claim of up to ``want`` jobs.

    ``active`` (the queue's active jobs) matters with a concurrency limit;
    ``claims_in_window`` and ``oldest_claim`` (claims logged in the last
    ``period_ms``, and the oldest one's time) with a rate; ``task_active``
    (active jobs per limited task) with task limits.
    """
    if limits.backoff_until > now:
        return Gate(0, limits.backoff_until)
    room, wake_at = want, None
    if limits.concurrency is not None:
        room = min(room, limits.concurrency - active)
    if limits.rate is not None:
        free = limits.rate - claims_in_window
        if free <= 0 and oldest_claim is not None:
            wake_at = oldest_claim + limits.period_ms
        room = min(room, free)
    task_room = None
    if limits.tasks:
        counts = task_active or {}
        task_room = {task: cap - counts.get(task, 0) for task, cap in limits.tasks.items()}
    return Gate(room, wake_at, task_room, rated=limits.rate is not None)


def earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
