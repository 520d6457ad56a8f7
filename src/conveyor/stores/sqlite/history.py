"""The metrics history in the SQLite file: a row per (kind, minute, labels) in ``history``,
and per (kind, hour, labels) in ``history_hours``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.stores.history import HOUR, HistoryRow, join_labels, split_labels, split_window
from conveyor.stores.sqlite.database import Database, on_connection

_UPSERT = (
    "INSERT INTO {table} (kind, {at}, labels, value) VALUES (?,?,?,?)"
    " ON CONFLICT (kind, {at}, labels) DO UPDATE SET value = value + excluded.value"
)


class SqliteHistory:
    """A :class:`~conveyor.stores.history.MetricsHistory` in the SQLite file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @on_connection
    def add(self, rows: Sequence[HistoryRow]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                _UPSERT.format(table="history", at="minute"),
                [(r.kind, r.minute, join_labels(r.labels), r.value) for r in rows],
            )
            conn.executemany(
                _UPSERT.format(table="history_hours", at="hour"),
                [(r.kind, r.minute // HOUR, join_labels(r.labels), r.value) for r in rows],
            )

    @on_connection
    def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int, step: int = 1
    ) -> list[HistoryRow]:
        if step == HOUR:
            sql = "SELECT hour * 60, labels, value FROM history_hours WHERE kind = ?"
            sql += " AND hour BETWEEN ? AND ? ORDER BY hour, labels"
            first, last = -(-since_minute // HOUR), until_minute // HOUR
        else:
            sql = "SELECT minute, labels, value FROM history WHERE kind = ?"
            sql += " AND minute BETWEEN ? AND ? ORDER BY minute, labels"
            first, last = since_minute, until_minute
        found: list[HistoryRow] = []
        for kind in sorted(set(kinds)):  # one primary-key range per kind
            rows = self.db.conn.execute(sql, (kind, first, last))
            found += [HistoryRow(kind, split_labels(text), m, v) for m, text, v in rows]
        return found

    @on_connection
    def totals(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> dict[tuple[str, tuple[str, ...]], int]:
        ends, hours = split_window(since_minute, until_minute)
        ranges = [("history", "minute", a, b) for a, b in ends]
        if hours is not None:
            ranges.append(("history_hours", "hour", *hours))
        sums: dict[tuple[str, tuple[str, ...]], int] = {}
        for kind in sorted(set(kinds)):
            for table, at, first, last in ranges:
                for text, total in _sums(self.db.conn, table, at, kind, first, last):
                    series = (kind, split_labels(text))
                    sums[series] = sums.get(series, 0) + int(total)
        return sums

    @on_connection
    def trim(self, before_minute: int) -> int:
        with self.db.transaction() as conn:
            # An hour goes with its last minute (hour * 60 + 59 < before).
            conn.execute("DELETE FROM history_hours WHERE hour < ?", (before_minute // HOUR,))
            return conn.execute("DELETE FROM history WHERE minute < ?", (before_minute,)).rowcount


def _sums(
    conn: sqlite3.Connection, table: str, at: str, kind: str, first: int, last: int
) -> list[tuple[str, int]]:
    return conn.execute(
        f"SELECT labels, sum(value) FROM {table} WHERE kind = ? AND {at} BETWEEN ? AND ?"
        " GROUP BY labels",
        (kind, first, last),
    ).fetchall()
