"""SqliteEventStore: event groups and processed ids in the backend's file.

Its tables are created on first use, on the connection's thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.stores.sqlite.database import Database, on_connection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_groups (
    grp        TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_processed (
    grp        TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (grp, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_processed_expiry ON event_processed (expires_at);
"""

TRIM_EVERY = 256
"""Expired processed ids are deleted once per this many marks (per process)."""


class SqliteEventStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._ready = False
        self._marks = 0

    def _conn(self) -> sqlite3.Connection:
        conn = self.db.conn
        if not self._ready:
            conn.executescript(_SCHEMA)
            self._ready = True
        return conn

    @on_connection
    def save_group(self, group: str, spec: bytes, now: int) -> None:
        self._conn().execute(
            "INSERT INTO event_groups (grp, spec, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (grp) DO UPDATE SET spec = excluded.spec,"
            " updated_at = excluded.updated_at",
            (group, spec.decode(), now),
        )

    async def groups(self) -> dict[str, bytes]:
        rows = await self.db.run(self._groups)
        return {group: spec.encode() for group, spec in rows}

    def _groups(self) -> list[tuple[str, str]]:
        return self._conn().execute("SELECT grp, spec FROM event_groups ORDER BY grp").fetchall()

    @on_connection
    def drop_group(self, group: str) -> bool:
        return self._conn().execute("DELETE FROM event_groups WHERE grp = ?", (group,)).rowcount > 0

    @on_connection
    def processed(self, group: str, event_ids: Sequence[str], now: int) -> set[str]:
        found: set[str] = set()
        conn = self._conn()
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT event_id FROM event_processed WHERE grp = ? AND expires_at > ?"
                f" AND event_id IN ({marks})",
                (group, now, *chunk),
            )
            found.update(row[0] for row in rows)
        return found

    @on_connection
    def mark_processed(
        self, group: str, event_ids: Sequence[str], expires_at: int, now: int
    ) -> None:
        conn = self._conn()
        with self.db.transaction():
            conn.executemany(
                "INSERT INTO event_processed (grp, event_id, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (grp, event_id) DO UPDATE SET expires_at = excluded.expires_at",
                [(group, event_id, expires_at) for event_id in event_ids],
            )
            self._marks += 1
            if self._marks % TRIM_EVERY == 0:
                conn.execute("DELETE FROM event_processed WHERE expires_at <= ?", (now,))
