"""Schedules in this process's memory, under the state's lock (so a fire and
its enqueue are one step)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from conveyor.stores.memory.state import MemoryState
from conveyor.stores.schedules import ScheduleFire, ScheduleRecord


class MemoryScheduleStore:
    """A :class:`~conveyor.stores.schedules.ScheduleStore` over a memory state."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state
        self._lock = state.lock
        self._rows = state.schedule_rows

    async def put_schedule(self, schedule: ScheduleRecord) -> bool:
        with self._lock:
            old = self._rows.get(schedule.name)
            if old is not None and old.same_definition(schedule):
                return False
            new = msgspec.structs.replace(
                schedule,
                version=(old.version if old else 0) + 1,
                updated_at=self._state.clock.now_ms(),
                paused=old.paused if old else False,
            )
            if old is not None and old.timing == schedule.timing:
                new.next_fire, new.last_fire = old.next_fire, old.last_fire
            self._rows[schedule.name] = new
            return True

    async def pause_schedule(self, name: str, paused: bool) -> bool:
        with self._lock:
            row = self._rows.get(name)
            if row is None:
                return False
            row.paused = paused
            row.version += 1
            row.updated_at = self._state.clock.now_ms()
            return True

    async def remove_schedule(self, name: str) -> bool:
        with self._lock:
            return self._rows.pop(name, None) is not None

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        with self._lock:
            row = self._rows.get(name)
            return None if row is None else msgspec.structs.replace(row)

    async def list_schedules(self) -> list[ScheduleRecord]:
        with self._lock:
            return [msgspec.structs.replace(self._rows[n]) for n in sorted(self._rows)]

    async def due_schedules(
        self, queues: Sequence[str], now: int, limit: int
    ) -> tuple[list[ScheduleRecord], int | None]:
        wanted = set(queues)
        with self._lock:
            mine = [r for r in self._rows.values() if r.queue in wanted and not r.paused]
        due = sorted((r for r in mine if r.next_fire <= now), key=lambda r: r.next_fire)
        later = min((r.next_fire for r in mine if r.next_fire > now), default=None)
        return [msgspec.structs.replace(r) for r in due[:limit]], later

    async def fire_schedules(self, fires: Sequence[ScheduleFire]) -> list[bool]:
        applied: list[bool] = []
        with self._lock:
            now = self._state.clock.now_ms()
            for fire in fires:
                row = self._rows.get(fire.name)
                if row is None or row.version != fire.version or row.next_fire != fire.expected:
                    applied.append(False)
                    continue
                for job in fire.jobs:
                    self._state.insert(job, now)
                row.next_fire = fire.next_fire
                if fire.last_fire is not None:
                    row.last_fire = fire.last_fire
                applied.append(True)
        return applied
