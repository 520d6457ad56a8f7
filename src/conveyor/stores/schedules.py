"""The schedule store protocol and the records that cross it.

A schedule row holds its next fire time. Firing is a compare-and-set: the
caller (``jobs/scheduler.py``) reads the due rows, computes with croniter
which ticks to fire and the following tick, and asks the store to apply
that; the store does it only if the row still has the version and next fire
time that were read, and in the same atomic step inserts the tick's jobs
(whose ids are deterministic, so a replayed fire inserts nothing). Several
workers may therefore race on a schedule: exactly one wins each tick.

Each backend implements this beside its job store, over the same connection,
because a fire must be one transaction with the enqueue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from conveyor.stores.base import NewJob


class ScheduleRecord(msgspec.Struct, gc=False):
    """A schedule as stored. ``timing`` is the encoded :class:`~conveyor.jobs.timing.Timing`."""

    name: str
    queue: str
    task: str
    timing: str
    payload: bytes
    options: bytes
    priority: int
    max_stalled: int
    missed: str
    grace_ms: int
    next_fire: int
    last_fire: int | None = None
    version: int = 0
    updated_at: int = 0
    paused: bool = False
    """A paused schedule does not fire; ``put_schedule`` keeps it paused."""

    def same_definition(self, other: ScheduleRecord) -> bool:
        return _definition(self) == _definition(other)


def _definition(r: ScheduleRecord) -> tuple[object, ...]:
    return (
        r.queue,
        r.task,
        r.timing,
        r.payload,
        r.options,
        r.priority,
        r.max_stalled,
        r.missed,
        r.grace_ms,
    )


class ScheduleFire(msgspec.Struct, gc=False):
    """Advance schedule ``name`` from ``expected`` to ``next_fire`` and insert ``jobs``.

    Applied only while the row still has ``version`` and ``next_fire == expected``.
    ``last_fire`` is the latest tick fired (None when this step only skipped ticks).
    """

    name: str
    queue: str
    version: int
    expected: int
    next_fire: int
    last_fire: int | None
    jobs: list[NewJob]


class ScheduleStore(Protocol):
    """What schedules need from a store. Every method is one atomic step."""

    async def put_schedule(self, schedule: ScheduleRecord) -> bool:
        """Insert or replace a schedule by name; False when nothing changed.

        A schedule that exists with the same ``timing`` keeps its
        ``next_fire`` and ``last_fire`` (a worker restart does not reset it).
        A schedule that exists keeps ``paused`` (the one given is ignored).
        Any change bumps ``version``.
        """
        ...

    async def pause_schedule(self, name: str, paused: bool) -> bool:
        """Pause or resume a schedule, bumping its ``version`` (a fire planned before
        loses its compare-and-set); False if there is no such schedule.

        A resumed schedule keeps its ``next_fire``: the scheduler then handles the
        ticks it missed while paused by its ``missed`` policy, as after an outage.
        """
        ...

    async def remove_schedule(self, name: str) -> bool: ...
    async def get_schedule(self, name: str) -> ScheduleRecord | None: ...
    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        ...

    async def due_schedules(
        self, queues: Sequence[str], now: int, limit: int
    ) -> tuple[list[ScheduleRecord], int | None]:
        """Up to ``limit`` schedules of ``queues`` with ``next_fire <= now``, earliest first,
        and the earliest ``next_fire`` of the others (None when there are none); paused
        schedules are neither."""
        ...

    async def fire_schedules(self, fires: Sequence[ScheduleFire]) -> list[bool]:
        """Apply each fire whose compare-and-set holds; per fire, whether it did."""
        ...
