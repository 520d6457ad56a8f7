"""The metrics history in the SQLite file: one row per (kind, minute, labels)."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.history import HistoryRow, join_labels, split_labels
from conveyor.stores.sqlite.database import Database, on_connection


class SqliteHistory:
    """A :class:`~conveyor.stores.history.MetricsHistory` in the SQLite file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @on_connection
    def add(self, rows: Sequence[HistoryRow]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO history (kind, minute, labels, value) VALUES (?,?,?,?)"
                " ON CONFLICT (kind, minute, labels) DO UPDATE SET value = value + excluded.value",
                [(r.kind, r.minute, join_labels(r.labels), r.value) for r in rows],
            )

    @on_connection
    def read(self, kinds: Sequence[str], since_minute: int, until_minute: int) -> list[HistoryRow]:
        found: list[HistoryRow] = []
        for kind in sorted(set(kinds)):  # one primary-key range per kind
            rows = self.db.conn.execute(
                "SELECT minute, labels, value FROM history"
                " WHERE kind = ? AND minute BETWEEN ? AND ? ORDER BY minute, labels",
                (kind, since_minute, until_minute),
            )
            found += [HistoryRow(kind, split_labels(text), m, v) for m, text, v in rows]
        return found

    @on_connection
    def trim(self, before_minute: int) -> int:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM history WHERE minute < ?", (before_minute,)).rowcount
