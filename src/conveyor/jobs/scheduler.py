"""The scheduler loop every worker runs: fire the due schedules of its queues.

There is no scheduler process. Each worker reads the schedules of its
queues that are due, decides here (croniter, the missed-ticks policy) which
ticks to fire and which tick comes next, and asks the store to apply that
as a compare-and-set; the store inserts the tick's jobs (ids
``<name>@<tick ms>``, run_at the tick) in the same atomic step. When several
workers race, one wins each tick and the others re-read. The loop then
sleeps until the earliest next tick, at most :data:`MAX_SLEEP` (so a schedule
added by another process is seen within a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.jobs.schedule import payload_search_keys
from conveyor.jobs.timing import Timing
from conveyor.observability.logging import get_logger
from conveyor.stores.base import NewJob
from conveyor.stores.schedules import ScheduleFire, ScheduleRecord

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime

log = get_logger("conveyor.scheduler")

MAX_SLEEP = 1.0
"""Longest the loop sleeps: how soon a schedule added elsewhere is noticed."""
MAX_TICKS = 1_000
"""Ticks one fire may enqueue for one schedule (a catch-up continues at once)."""
DUE_LIMIT = 100


def tick_job_id(name: str, tick: int) -> str:
    """The id of the job a schedule enqueues for ``tick``: a replayed fire inserts nothing."""
    return f"{name}@{tick}"


def plan_fire(record: ScheduleRecord, now: int) -> ScheduleFire:
    """Which ticks of a due schedule to fire now, and its next fire time.

    Ticks more than ``grace_ms`` late are missed: ``skip`` drops them,
    ``run_once`` fires one job for them (at the latest of them). The others
    fire one job each, up to :data:`MAX_TICKS`.
    """
    timing = Timing.decode(record.timing)
    ticks: list[int] = []
    tick = record.next_fire
    cutoff = now - record.grace_ms
    if tick < cutoff:
        first_on_time = timing.next_at_or_after(cutoff)
        latest_missed = timing.prev_before(first_on_time)
        log.warning(
            "schedule missed ticks",
            schedule=record.name,
            since=record.next_fire,
            until=latest_missed,
            policy=record.missed,
        )
        if record.missed == "run_once":
            ticks.append(latest_missed)
        tick = first_on_time
    while tick <= now and len(ticks) < MAX_TICKS:
        ticks.append(tick)
        tick = timing.next_after(tick)
    return ScheduleFire(
        name=record.name,
        queue=record.queue,
        version=record.version,
        expected=record.next_fire,
        next_fire=tick,
        last_fire=ticks[-1] if ticks else None,
        jobs=[_job(record, t, now) for t in ticks],
    )


def _job(record: ScheduleRecord, tick: int, now: int) -> NewJob:
    return NewJob(
        id=tick_job_id(record.name, tick),
        queue=record.queue,
        task=record.task,
        payload=record.payload,
        options=record.options,
        priority=record.priority,
        run_at=tick,
        created_at=now,
        max_stalled=record.max_stalled,
    )


class Scheduler:
    """Fires the schedules of ``queues`` from inside a worker."""

    def __init__(self, app: Runtime, queues: Sequence[str]) -> None:
        self.app = app
        self.queues = list(queues)
        self.store = app.schedules.store
        self._declared_written = False
        self._errors = 0

    async def run(self, halt: asyncio.Event) -> None:
        """Fire due schedules until ``halt`` is set."""
        while not halt.is_set():
            try:
                delay = await self.step()
                self._errors = 0
            except Exception as exc:  # the store is down: keep trying, with backoff
                self._errors += 1
                delay = min(MAX_SLEEP * 5, 0.05 * 2 ** min(self._errors, 7))
                log.error("scheduler step failed", error=f"{type(exc).__name__}: {exc}")
            if delay > 0:
                await self.app.clock.sleep_or_wake(halt, delay)

    async def step(self) -> float:
        """Fire what is due; return how long to sleep before the next look."""
        if not self._declared_written:
            await self.app.schedules.put_declared()
            self._declared_written = True
        now = self.app.clock.now_ms()
        due, later = await self.store.due_schedules(self.queues, now, DUE_LIMIT)
        if not due:
            return _until(later, now)
        fires = [fire for fire in (self._plan(r, now) for r in due) if fire is not None]
        applied = await self.store.fire_schedules(fires)
        if any(ok and fire.jobs for ok, fire in zip(applied, fires, strict=True)):
            for wakeup in self.app.jobs.wakeups:
                wakeup.set()
        if not all(applied) or len(due) == DUE_LIMIT:
            return 0.0  # another worker moved a schedule, or more are due: look again
        upcoming = [fire.next_fire for fire in fires] + ([] if later is None else [later])
        return _until(min(upcoming, default=None), self.app.clock.now_ms())

    def _plan(self, record: ScheduleRecord, now: int) -> ScheduleFire | None:
        """One broken schedule (say, timing written by a newer version) must not stop the
        others. Its jobs get the search keys of their task, if this worker has it."""
        try:
            fire = plan_fire(record, now)
            keys = payload_search_keys(self.app.tasks.get(record.task), record.payload)
        except Exception as exc:
            log.error(
                "cannot plan schedule", schedule=record.name, error=f"{type(exc).__name__}: {exc}"
            )
            return None
        for job in fire.jobs:
            job.search_keys = keys
        return fire


def _until(at: int | None, now: int) -> float:
    if at is None:
        return MAX_SLEEP
    return min(MAX_SLEEP, max(0.0, (at - now) / 1000))
