"""Debounce and throttle keys in the SQLite file: one transaction per batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.base import NewJob, released_state
from conveyor.stores.dedupe import Dedupe
from conveyor.stores.search import job_field_keys
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.rows import ensure_queues, insert_job


class SqliteDedupeStore:
    """A :class:`~conveyor.stores.dedupe.DedupeStore` in the SQLite file."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @on_connection
    def enqueue_deduped(self, jobs: Sequence[tuple[NewJob, Dedupe]]) -> list[tuple[str, bool]]:
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            conn.execute("DELETE FROM dedupe_keys WHERE expires_at <= ?", (now,))
            ensure_queues(conn, {new.queue for new, _ in jobs})
            counts = Counts()
            answers = [self._one(conn, new, dedupe, now, counts) for new, dedupe in jobs]
            counts.apply(conn)
            return answers

    def _one(
        self, conn: sqlite3.Connection, new: NewJob, dedupe: Dedupe, now: int, counts: Counts
    ) -> tuple[str, bool]:
        row = conn.execute(
            "SELECT job_id FROM dedupe_keys WHERE queue = ? AND key = ?", (new.queue, dedupe.key)
        ).fetchone()
        if row is not None:
            (held,) = row
            if dedupe.mode == "throttle":
                if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (held,)).fetchone():
                    return held, False
            elif self._replace_pending(conn, held, new, now, counts):
                self._point(conn, new.queue, dedupe, held)
                return held, False
        inserted = insert_job(conn, new, now, counts)
        self._point(conn, new.queue, dedupe, new.id)
        return new.id, inserted

    def _replace_pending(
        self, conn: sqlite3.Connection, job_id: str, new: NewJob, now: int, counts: Counts
    ) -> bool:
        row = conn.execute("SELECT queue, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row[1] not in ("scheduled", "waiting"):
            return False
        state = released_state(new.run_at, now).value
        cursor = conn.execute(
            "UPDATE jobs SET payload = ?, options = ?, priority = ?, run_at = ?, state = ?"
            " WHERE id = ? AND state IN ('scheduled', 'waiting')",
            (
                new.payload,
                new.options,
                new.priority,
                new.run_at,
                state,
                job_id,
            ),
        )
        if cursor.rowcount != 1:
            return False
        counts.move(row[0], row[1], state)
        # Its fields are the latest call's (a pending job has no error keys).
        conn.execute("DELETE FROM job_keys WHERE job_id = ?", (job_id,))
        conn.executemany(
            "INSERT INTO job_keys (job_id, key, created_at)"
            " SELECT ?, ?, created_at FROM jobs WHERE id = ?",
            [(job_id, key, job_id) for key in job_field_keys(new.search_keys)],
        )
        if new.search_keys:
            conn.execute("UPDATE jobs SET keyed = 1 WHERE id = ?", (job_id,))
        return True

    def _point(self, conn: sqlite3.Connection, queue: str, dedupe: Dedupe, job_id: str) -> None:
        conn.execute(
            "INSERT INTO dedupe_keys (queue, key, job_id, expires_at) VALUES (?,?,?,?)"
            " ON CONFLICT (queue, key) DO UPDATE SET job_id = excluded.job_id,"
            " expires_at = excluded.expires_at",
            (queue, dedupe.key, job_id, dedupe.until),
        )
