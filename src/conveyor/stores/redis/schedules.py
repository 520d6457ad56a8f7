"""Schedules on Redis: each schedule lives in its target queue's slot.

A schedule is a hash ``cv:{queue}:schedule:<name>`` indexed by next fire time
in ``cv:{queue}:schedules``, so the fire script (compare-and-set, enqueue,
advance) touches one slot: the queue its jobs go to. ``cv:schedules`` maps
every name to its queue, for lookups by name and listing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor.clock import Clock
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.scripts import insert_args
from conveyor.stores.schedules import ScheduleFire, ScheduleRecord

INDEX_KEY = "cv:schedules"


def _key(queue: str, name: str) -> str:
    return f"cv:{{{queue}}}:schedule:{name}"


def _opt(value: int | None) -> int | str:
    return "" if value is None else value


class RedisScheduleStore:
    """A :class:`~conveyor.stores.schedules.ScheduleStore` on the Redis backend's connection."""

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def _queue_of(self, name: str) -> str | None:
        queue = await self._conn.call(self._conn.client.hget, INDEX_KEY, name)
        return None if queue is None else queue.decode()

    async def put_schedule(self, schedule: ScheduleRecord) -> bool:
        s = schedule
        await self._conn.remember_queues({s.queue})
        old_queue = await self._queue_of(s.name)
        moved = old_queue is not None and old_queue != s.queue
        paused_before = False
        if moved:
            assert old_queue is not None
            old = await self._read(old_queue, s.name)
            if old is not None and old.timing == s.timing:
                s = msgspec.structs.replace(s, next_fire=old.next_fire, last_fire=old.last_fire)
            paused_before = old is not None and old.paused
            await self._conn.run_script("schedule_admin", old_queue, ["remove", s.name])
        args = ["put", s.name, s.task, s.timing, s.payload, s.options, s.priority]
        args += [
            s.max_stalled,
            s.missed,
            s.grace_ms,
            s.next_fire,
            _opt(s.last_fire),
            self._clock.now_ms(),
        ]
        changed = await self._conn.run_script("schedule_admin", s.queue, args)
        await self._conn.call(self._conn.client.hset, INDEX_KEY, s.name, s.queue)
        if paused_before:  # it stays paused in its new queue
            pause = ["pause", s.name, "1", self._clock.now_ms()]
            await self._conn.run_script("schedule_admin", s.queue, pause)
        return moved or bool(changed)

    async def pause_schedule(self, name: str, paused: bool) -> bool:
        queue = await self._queue_of(name)
        if queue is None:
            return False
        args = ["pause", name, "1" if paused else "0", self._clock.now_ms()]
        return bool(await self._conn.run_script("schedule_admin", queue, args))

    async def remove_schedule(self, name: str) -> bool:
        queue = await self._queue_of(name)
        if queue is None:
            return False
        removed = await self._conn.run_script("schedule_admin", queue, ["remove", name])
        await self._conn.call(self._conn.client.hdel, INDEX_KEY, name)
        return bool(removed)

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        queue = await self._queue_of(name)
        return None if queue is None else await self._read(queue, name)

    async def _read(self, queue: str, name: str) -> ScheduleRecord | None:
        raw = await self._conn.call(self._conn.client.hgetall, _key(queue, name))
        return _record(name, queue, raw) if raw else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        index = await self._conn.call(self._conn.client.hgetall, INDEX_KEY)
        entries = sorted((n.decode(), q.decode()) for n, q in index.items())
        rows = await self._conn.pipelined("hgetall", [(_key(q, n),) for n, q in entries])
        return [_record(n, q, raw) for (n, q), raw in zip(entries, rows, strict=True) if raw]

    async def due_schedules(
        self, queues: Sequence[str], now: int, limit: int
    ) -> tuple[list[ScheduleRecord], int | None]:
        due: list[ScheduleRecord] = []
        later: list[int] = []
        for queue in queues:
            rows, next_fire = await self._conn.run_script("schedule_due", queue, [now, limit])
            due += [_record(name.decode(), queue, _pairs(flat)) for name, flat in rows]
            if next_fire:
                later.append(int(float(next_fire)))
        due.sort(key=lambda r: r.next_fire)
        return due[:limit], min(later, default=None)

    async def fire_schedules(self, fires: Sequence[ScheduleFire]) -> list[bool]:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, fire in enumerate(fires):
            by_queue[fire.queue].append(index)
        applied = [False] * len(fires)
        for queue, indexes in by_queue.items():
            args: list[Any] = [self._clock.now_ms()]
            for i in indexes:
                f = fires[i]
                args += [f.name, f.version, f.expected, f.next_fire, _opt(f.last_fire)]
                args.append(len(f.jobs))
                for j in f.jobs:
                    args += insert_args(j)
            flags = await self._conn.run_script("schedule_fire", queue, args)
            for i, flag in zip(indexes, flags, strict=True):
                applied[i] = bool(flag)
        return applied


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _record(name: str, queue: str, raw: dict[bytes, bytes]) -> ScheduleRecord:
    f = {k.decode(): v for k, v in raw.items()}
    return ScheduleRecord(
        name=name,
        queue=queue,
        task=f["task"].decode(),
        timing=f["timing"].decode(),
        payload=f["payload"],
        options=f["options"],
        priority=int(f["priority"]),
        max_stalled=int(f["max_stalled"]),
        missed=f["missed"].decode(),
        grace_ms=int(f["grace_ms"]),
        next_fire=int(f["next_fire"]),
        last_fire=int(f["last_fire"]) if "last_fire" in f else None,
        version=int(f["version"]),
        updated_at=int(f["updated_at"]),
        paused=f.get("paused") == b"1",
    )
