"""Schedules: declared on a task (``@app.task(cron=...)``) or added at run time (``app.schedules``).

A schedule enqueues one job of its task per tick, with fixed arguments. Any
worker serving the schedule's queue fires it (``jobs/scheduler.py``); the
store makes each tick fire exactly once however many workers race on it.

Ticks are fired when they come, and a late worker catches up tick by tick,
as long as a tick is at most ``grace`` seconds late (default 60). A tick
later than that was *missed* (everything was down, or too busy): ``missed``
decides what happens to those: ``"skip"`` (the default, as cron does) drops
them; ``"run_once"`` enqueues one job for them all (with the latest missed
tick as its time), then the schedule goes on.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from conveyor import serialization
from conveyor.errors import InvalidScheduleError, NotFoundError
from conveyor.jobs.job import Job
from conveyor.jobs.options import Call, EnqueueOptions
from conveyor.jobs.search import search_keys
from conveyor.jobs.timing import Timing, to_datetime
from conveyor.stores.base import NewJob
from conveyor.stores.schedules import ScheduleRecord, ScheduleStore

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime
    from conveyor.jobs.task import Task

Missed = Literal["skip", "run_once"]
MISSED_POLICIES: tuple[Missed, ...] = ("skip", "run_once")
DEFAULT_GRACE = 60.0
MAX_NAME_LENGTH = 150


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule: when it fires and the job it enqueues each time."""

    name: str
    task: str
    queue: str
    cron: str | None
    tz: str | None
    every: float | None
    """Seconds between ticks of an interval schedule (ticks aligned on the Unix epoch)."""
    missed: Missed
    grace: float
    next_fire: datetime
    last_fire: datetime | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int
    paused: bool = False
    """A paused schedule does not fire (``app.schedules.pause``)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times as ISO 8601)."""
        return {
            "name": self.name,
            "task": self.task,
            "queue": self.queue,
            "cron": self.cron,
            "tz": self.tz,
            "every": self.every,
            "missed": self.missed,
            "grace": self.grace,
            "next_fire": self.next_fire.isoformat(),
            "last_fire": None if self.last_fire is None else self.last_fire.isoformat(),
            "args": list(self.args),
            "kwargs": self.kwargs,
            "priority": self.priority,
            "paused": self.paused,
        }


class ScheduleClient:
    """Add, read, pause, trigger and remove schedules (``app.schedules``).

    >>> await app.schedules.add(report.call(7, fmt="csv"), cron="0 8 * * 1-5", tz="Europe/Paris")
    >>> await app.schedules.add(ping, every=30, name="ping")
    """

    def __init__(self, app: Runtime) -> None:
        self.app = app
        self.store: ScheduleStore = app.backend.schedules
        self.declared: dict[str, ScheduleRecord] = {}
        """Schedules declared on tasks; workers write them when they start."""

    def declare(
        self,
        task: Task[Any, Any],
        *,
        cron: str | None,
        every: float | timedelta | None,
        tz: str | None,
        missed: Missed,
    ) -> None:
        """Validate and remember the schedule of ``@app.task(cron=...)``, named after the task."""
        call: Call[Any] = Call(task, (), {}, EnqueueOptions())
        self.declared[task.name] = self._record(call, task.name, cron, every, tz, missed, None)

    async def put_declared(self) -> None:
        """Write the declared schedules (an unchanged one keeps its next fire time)."""
        for record in self.declared.values():
            await self._put(record)

    async def add(
        self,
        call: Call[Any] | Task[Any, Any],
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str | None = None,
        name: str | None = None,
        missed: Missed = "skip",
        grace: float = DEFAULT_GRACE,
    ) -> Schedule:
        """Add or replace schedule ``name`` (default: the task's name).

        ``call`` is ``task.call(*args, **kwargs)`` (type-checked against the
        task), or a task that takes no arguments. ``cron`` is a croniter
        expression evaluated in ``tz`` (default UTC); ``every`` is seconds or a
        timedelta. Replacing a schedule with the same timing keeps its next
        fire time. Raises :class:`InvalidScheduleError` (nothing written) for a
        bad expression, time zone, interval or policy.
        """
        if not isinstance(call, Call):
            call = Call(call, (), {}, EnqueueOptions())
        record = self._record(call, name or call.task.name, cron, every, tz, missed, grace)
        await self.app.open()
        await self._put(record)
        return await self.get(record.name)

    async def get(self, name: str) -> Schedule:
        await self.app.open()
        record = await self.store.get_schedule(name)
        if record is None:
            raise NotFoundError(f"no schedule named {name!r}")
        return _schedule(record)

    async def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        await self.app.open()
        return [_schedule(r) for r in await self.store.list_schedules()]

    async def remove(self, name: str) -> None:
        """Delete schedule ``name``; jobs it already enqueued stay."""
        await self.app.open()
        if not await self.store.remove_schedule(name):
            raise NotFoundError(f"no schedule named {name!r}")

    async def pause(self, name: str) -> Schedule:
        """Stop firing schedule ``name`` until :meth:`resume` (kept across worker restarts)."""
        return await self._pause(name, True)

    async def resume(self, name: str) -> Schedule:
        """Fire schedule ``name`` again. Ticks it missed while paused are handled by its
        ``missed`` policy, as after an outage: ``skip`` drops those more than ``grace``
        late, ``run_once`` enqueues one job for them."""
        return await self._pause(name, False)

    async def _pause(self, name: str, paused: bool) -> Schedule:
        await self.app.open()
        if not await self.store.pause_schedule(name, paused):
            raise NotFoundError(f"no schedule named {name!r}")
        return await self.get(name)

    async def trigger(self, name: str) -> Job[Any]:
        """Enqueue schedule ``name``'s job now, outside its timing (paused or not), with id
        ``<name>@manual-<ms>``; its next tick stays as it was."""
        await self.app.open()
        record = await self.store.get_schedule(name)
        if record is None:
            raise NotFoundError(f"no schedule named {name!r}")
        now = self.app.clock.now_ms()
        job = NewJob(
            id=f"{name}@manual-{now}",
            queue=record.queue,
            task=record.task,
            payload=record.payload,
            options=record.options,
            priority=record.priority,
            run_at=now,
            created_at=now,
            max_stalled=record.max_stalled,
            search_keys=payload_search_keys(self.app.tasks.get(record.task), record.payload),
        )
        await self.app.store.enqueue([job])  # a second trigger in the same ms adds nothing
        for wakeup in self.app.jobs.wakeups:
            wakeup.set()
        return await self.app.jobs.get(job.id)

    async def _put(self, record: ScheduleRecord) -> None:
        next_fire = Timing.decode(record.timing).next_after(self.app.clock.now_ms())
        await self.store.put_schedule(msgspec.structs.replace(record, next_fire=next_fire))

    def _record(
        self,
        call: Call[Any],
        name: str,
        cron: str | None,
        every: float | timedelta | None,
        tz: str | None,
        missed: Missed,
        grace: float | None,
    ) -> ScheduleRecord:
        _check(name, missed, grace)
        timing = Timing.parse(cron=cron, every=every, tz=tz)
        opts = call.options
        if opts.job_id is not None or opts.delay is not None or opts.at is not None:
            raise InvalidScheduleError("job_id, delay and at do not apply to scheduled jobs")
        job = self.app.jobs.build(call, 0)
        return ScheduleRecord(
            name=name,
            queue=job.queue,
            task=job.task,
            timing=timing.encode(),
            payload=job.payload,
            options=job.options,
            priority=job.priority,
            max_stalled=job.max_stalled,
            missed=missed,
            grace_ms=round((DEFAULT_GRACE if grace is None else grace) * 1000),
            next_fire=0,
        )


def _check(name: str, missed: str, grace: float | None) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidScheduleError(
            f"a schedule name is 1..{MAX_NAME_LENGTH} printable characters, got {name!r}"
        )
    if missed not in MISSED_POLICIES:
        raise InvalidScheduleError(f"missed must be 'skip' or 'run_once', got {missed!r}")
    if grace is not None and (
        not isinstance(grace, int | float) or isinstance(grace, bool) or not 0 <= grace <= 86_400
    ):
        raise InvalidScheduleError(f"grace must be 0..86400 seconds, got {grace!r}")


def _schedule(r: ScheduleRecord) -> Schedule:
    timing = Timing.decode(r.timing)
    args, kwargs = serialization.decode_call(r.payload)
    missed: Missed = "run_once" if r.missed == "run_once" else "skip"
    return Schedule(
        name=r.name,
        task=r.task,
        queue=r.queue,
        cron=timing.cron,
        tz=timing.tz,
        every=timing.every,
        missed=missed,
        grace=r.grace_ms / 1000,
        next_fire=to_datetime(r.next_fire),
        last_fire=None if r.last_fire is None else to_datetime(r.last_fire),
        args=tuple(args),
        kwargs=dict(kwargs),
        priority=r.priority,
        paused=r.paused,
    )


def payload_search_keys(task: Task[Any, Any] | None, payload: bytes) -> list[str]:
    """The search keys of a stored call of ``task`` (none if this process lacks the task)."""
    if task is None or not task.search:
        return []
    args, kwargs = serialization.decode_call(payload)
    return search_keys(task.signature, task.search, args, kwargs)
