"""Schedules in the SQLite file: each step one transaction on the backend's connection,
so a fire's compare-and-set and the insert of its jobs commit together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.clock import Clock
from conveyor.stores.schedules import ScheduleFire, ScheduleRecord
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.rows import ensure_queues, insert_job

_COLUMNS = (
    "name, queue, task, timing, payload, options, priority, max_stalled, missed, grace_ms,"
    " next_fire, last_fire, version, updated_at, paused"
)
_PUT_COLUMNS = _COLUMNS.removesuffix(", paused")
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
_UNCHANGED = " AND ".join(f"schedules.{c} IS excluded.{c}" for c in _DEFINITION)
_KEPT_IF_SAME_TIMING = ", ".join(
    f"{c} = CASE WHEN schedules.timing = excluded.timing THEN schedules.{c} ELSE excluded.{c} END"
    for c in ("next_fire", "last_fire")
)
_PUT = (
    f"INSERT INTO schedules ({_PUT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?)"
    " ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _DEFINITION if c != "timing")
    + f", {_KEPT_IF_SAME_TIMING}, timing = excluded.timing,"
    " version = schedules.version + 1, updated_at = excluded.updated_at"
    f" WHERE NOT ({_UNCHANGED})"
)


def _record(row: tuple[Any, ...]) -> ScheduleRecord:
    record = ScheduleRecord(*row[:-1])  # the columns but paused, in field order
    record.paused = bool(row[-1])
    return record


class SqliteScheduleStore:
    """A :class:`~conveyor.stores.schedules.ScheduleStore` in the SQLite file."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @on_connection
    def put_schedule(self, schedule: ScheduleRecord) -> bool:
        s = schedule
        with self.db.transaction() as conn:
            ensure_queues(conn, [s.queue])
            cursor = conn.execute(
                _PUT,
                (
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
                ),
            )
            return cursor.rowcount == 1

    @on_connection
    def pause_schedule(self, name: str, paused: bool) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE schedules SET paused = ?, version = version + 1, updated_at = ?"
                " WHERE name = ?",
                (int(paused), self.clock.now_ms(), name),
            )
            return cursor.rowcount == 1

    @on_connection
    def remove_schedule(self, name: str) -> bool:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 1

    @on_connection
    def get_schedule(self, name: str) -> ScheduleRecord | None:
        row = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else _record(row)

    @on_connection
    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self.db.conn.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY name").fetchall()
        return [_record(row) for row in rows]

    @on_connection
    def due_schedules(
        self, queues: Sequence[str], now: int, limit: int
    ) -> tuple[list[ScheduleRecord], int | None]:
        marks = ",".join("?" * len(queues))
        conn = self.db.conn
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE queue IN ({marks}) AND next_fire <= ?"
            " AND NOT paused ORDER BY next_fire LIMIT ?",
            [*queues, now, limit],
        ).fetchall()
        (later,) = conn.execute(
            f"SELECT min(next_fire) FROM schedules WHERE queue IN ({marks}) AND next_fire > ?"
            " AND NOT paused",
            [*queues, now],
        ).fetchone()
        return [_record(row) for row in rows], later

    @on_connection
    def fire_schedules(self, fires: Sequence[ScheduleFire]) -> list[bool]:
        applied: list[bool] = []
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            counts = Counts()
            for fire in fires:
                cursor = conn.execute(
                    "UPDATE schedules SET next_fire = ?, last_fire = coalesce(?, last_fire)"
                    " WHERE name = ? AND version = ? AND next_fire = ?",
                    (fire.next_fire, fire.last_fire, fire.name, fire.version, fire.expected),
                )
                ok = cursor.rowcount == 1
                if ok:
                    for job in fire.jobs:
                        insert_job(conn, job, now, counts)
                applied.append(ok)
            counts.apply(conn)
        return applied
