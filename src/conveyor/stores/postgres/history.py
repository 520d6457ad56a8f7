"""The metrics history in PostgreSQL: a row per (kind, minute, labels) in ``history``, and
per (kind, hour, labels) in ``history_hours``; each add is one statement."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.history import HOUR, HistoryRow, join_labels, split_labels, split_window
from conveyor.stores.postgres.connection import Conn, PostgresConnection

_ADD = """
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
        AS r (kind, minute, labels, value)
), minutes AS (
    INSERT INTO {schema}.history AS h (kind, minute, labels, value)
    SELECT kind, minute, labels, sum(value) FROM r GROUP BY kind, minute, labels
    ORDER BY kind, minute, labels
    ON CONFLICT (kind, minute, labels) DO UPDATE SET value = h.value + excluded.value
)
INSERT INTO {schema}.history_hours AS h (kind, hour, labels, value)
SELECT kind, minute / 60, labels, sum(value) FROM r GROUP BY kind, minute / 60, labels
ORDER BY kind, minute / 60, labels
ON CONFLICT (kind, hour, labels) DO UPDATE SET value = h.value + excluded.value
"""
_READ_MINUTES = (
    "SELECT kind, minute, labels, value FROM {schema}.history WHERE kind = ANY ($1::text[])"
    " AND minute BETWEEN $2 AND $3 ORDER BY kind, minute, labels"
)
_READ_HOURS = (
    "SELECT kind, hour * 60 AS minute, labels, value FROM {schema}.history_hours"
    " WHERE kind = ANY ($1::text[]) AND hour BETWEEN $2 AND $3 ORDER BY kind, hour, labels"
)
_SUMS = """
SELECT kind, labels, sum(value)::bigint AS total FROM (
    SELECT m.kind, m.labels, m.value FROM {schema}.history m
        JOIN unnest($2::bigint[], $3::bigint[]) AS w (first, last)
            ON m.minute BETWEEN w.first AND w.last
        WHERE m.kind = ANY ($1::text[])
    UNION ALL
    SELECT h.kind, h.labels, h.value FROM {schema}.history_hours h
        WHERE h.kind = ANY ($1::text[]) AND h.hour BETWEEN $4 AND $5
) s GROUP BY kind, labels
"""


class PostgresHistory:
    """A :class:`~conveyor.stores.history.MetricsHistory` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection) -> None:
        self.db = db

    async def add(self, rows: Sequence[HistoryRow]) -> None:
        if not rows:
            return
        await self.db.execute(
            _ADD,
            [r.kind for r in rows],
            [r.minute for r in rows],
            [join_labels(r.labels) for r in rows],
            [r.value for r in rows],
        )

    async def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int, step: int = 1
    ) -> list[HistoryRow]:
        if step == HOUR:
            sql, first, last = _READ_HOURS, -(-since_minute // HOUR), until_minute // HOUR
        else:
            sql, first, last = _READ_MINUTES, since_minute, until_minute
        rows = await self.db.fetch(sql, sorted(set(kinds)), first, last)
        return [
            HistoryRow(r["kind"], split_labels(r["labels"]), r["minute"], r["value"]) for r in rows
        ]

    async def totals(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> dict[tuple[str, tuple[str, ...]], int]:
        ends, hours = split_window(since_minute, until_minute)
        first_hour, last_hour = hours if hours is not None else (0, -1)
        rows = await self.db.fetch(
            _SUMS,
            sorted(set(kinds)),
            [a for a, _ in ends],
            [b for _, b in ends],
            first_hour,
            last_hour,
        )
        return {(r["kind"], split_labels(r["labels"])): int(r["total"]) for r in rows}

    async def trim(self, before_minute: int) -> int:
        async def step(conn: Conn) -> int:
            # An hour goes with its last minute (hour * 60 + 59 < before).
            await conn.execute(
                self.db.sql("DELETE FROM {schema}.history_hours WHERE hour < $1"),
                before_minute // HOUR,
            )
            status = await conn.execute(
                self.db.sql("DELETE FROM {schema}.history WHERE minute < $1"), before_minute
            )
            return int(status.split()[-1])

        return await self.db.transaction(step)
