"""Schedules in the PostgreSQL store: a fire's compare-and-set and the insert of its
jobs commit together, in one transaction.

Two workers firing the same tick race on the row: the second one's UPDATE waits
for the first to commit, then finds ``next_fire`` moved and applies nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.postgres.connection import Conn, PostgresConnection, Record
from conveyor.stores.postgres.rows import insert_jobs
from conveyor.stores.schedules import ScheduleFire, ScheduleRecord

_PUT_COLUMNS = (
    "name, queue, task, timing, payload, options, priority, max_stalled, missed, grace_ms,"
    " next_fire, last_fire, version, updated_at"
)
_COLUMNS = _PUT_COLUMNS + ", paused"
""":class:`ScheduleRecord`'s fields, in order (a schedule that exists keeps ``paused``)."""
_DEFINITION = (
    "queue",
    "task",
    "timing",
    "payload",
    "options",
    "priority",
    "max_stalled",
    "missed",
    "grace_ms",
)
_UNCHANGED = " AND ".join(f"s.{c} IS NOT DISTINCT FROM excluded.{c}" for c in _DEFINITION)
_KEPT_IF_SAME_TIMING = ", ".join(
    f"{c} = CASE WHEN s.timing = excluded.timing THEN s.{c} ELSE excluded.{c} END"
    for c in ("next_fire", "last_fire")
)
_PUT = (
    f"INSERT INTO {{schema}}.schedules AS s ({_PUT_COLUMNS})"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13)"
    " ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _DEFINITION if c != "timing")
    + f", {_KEPT_IF_SAME_TIMING}, timing = excluded.timing,"
    " version = s.version + 1, updated_at = excluded.updated_at"
    f" WHERE NOT ({_UNCHANGED})"
)


def _record(row: Record) -> ScheduleRecord:
    return ScheduleRecord(*row.values())


class PostgresScheduleStore:
    """A :class:`~conveyor.stores.schedules.ScheduleStore` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def put_schedule(self, schedule: ScheduleRecord) -> bool:
        s = schedule

        async def step(conn: Conn) -> bool:
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.queues (name) VALUES ($1) ON CONFLICT DO NOTHING"
                ),
                s.queue,
            )
            status = await conn.execute(
                self.db.sql(_PUT),
                s.name,
                s.queue,
                s.task,
                s.timing,
                s.payload,
                s.options,
                s.priority,
                s.max_stalled,
                s.missed,
                s.grace_ms,
                s.next_fire,
                s.last_fire,
                self.clock.now_ms(),
            )
            return status.endswith(" 1")

        return await self.db.transaction(step)

    async def pause_schedule(self, name: str, paused: bool) -> bool:
        status = await self.db.execute(
            "UPDATE {schema}.schedules SET paused = $1, version = version + 1, updated_at = $2"
            " WHERE name = $3",
            paused,
            self.clock.now_ms(),
            name,
        )
        return status == "UPDATE 1"

    async def remove_schedule(self, name: str) -> bool:
        status = await self.db.execute("DELETE FROM {schema}.schedules WHERE name = $1", name)
        return status == "DELETE 1"

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM {{schema}}.schedules WHERE name = $1", name
        )
        return None if row is None else _record(row)

    async def list_schedules(self) -> list[ScheduleRecord]:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM {{schema}}.schedules ORDER BY name")
        return [_record(row) for row in rows]

    async def due_schedules(
        self, queues: Sequence[str], now: int, limit: int
    ) -> tuple[list[ScheduleRecord], int | None]:
        async def read(conn: Conn) -> tuple[list[ScheduleRecord], int | None]:
            rows = await conn.fetch(
                self.db.sql(
                    f"SELECT {_COLUMNS} FROM {{schema}}.schedules WHERE queue = ANY ($1::text[])"
                    " AND next_fire <= $2 AND NOT paused ORDER BY next_fire LIMIT $3"
                ),
                list(queues),
                now,
                limit,
            )
            later = await conn.fetchval(
                self.db.sql(
                    "SELECT min(next_fire) FROM {schema}.schedules"
                    " WHERE queue = ANY ($1::text[]) AND next_fire > $2 AND NOT paused"
                ),
                list(queues),
                now,
            )
            return [_record(row) for row in rows], later

        return await self.db.transaction(read)

    async def fire_schedules(self, fires: Sequence[ScheduleFire]) -> list[bool]:
        async def step(conn: Conn) -> list[bool]:
            now = self.clock.now_ms()
            applied: list[bool] = []
            for fire in fires:
                status = await conn.execute(
                    self.db.sql(
                        "UPDATE {schema}.schedules SET next_fire = $1,"
                        " last_fire = coalesce($2, last_fire)"
                        " WHERE name = $3 AND version = $4 AND next_fire = $5"
                    ),
                    fire.next_fire,
                    fire.last_fire,
                    fire.name,
                    fire.version,
                    fire.expected,
                )
                ok = status == "UPDATE 1"
                if ok:
                    await insert_jobs(conn, self.db, fire.jobs, now)
                applied.append(ok)
            return applied

        return await self.db.transaction(step)
