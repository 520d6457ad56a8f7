"""Leases in the SQLite job store: renewals, releases, progress, stalls and expiry."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.base import (
    EVENTS_KEPT,
    LeaseStatus,
    LogLine,
    ProgressUpdate,
    StalledJob,
    stalled_error,
)
from conveyor.stores.notify import Notifier
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.flow_reports import report_finished
from conveyor.stores.sqlite.keys import index_failed
from conveyor.stores.sqlite.rows import CHUNK, Event, insert_events, release_leases

_PURGE_BATCH = 1_000


class SqliteLeases:
    """The lease steps of :class:`~conveyor.stores.sqlite.jobs.SqliteJobStore`."""

    db: Database
    clock: Clock
    notifier: Notifier

    @on_connection
    def renew(self, leases: Sequence[tuple[str, str]], lease_ms: int) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self.db.transaction() as conn:
            until = self.clock.now_ms() + lease_ms
            for job_id, token in leases:
                row = conn.execute(
                    "UPDATE jobs SET lease_until = ? WHERE id = ? AND token = ?"
                    " AND state = 'active' RETURNING cancel_requested",
                    (until, job_id, token),
                ).fetchone()
                if row is None:
                    statuses[job_id] = LeaseStatus.LOST
                elif row[0]:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    @on_connection
    def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        with self.db.transaction() as conn:
            counts = Counts()
            released = release_leases(conn, leases, self.clock.now_ms(), keep_ms, counts)
            counts.apply(conn)
        self.notifier.notify()
        return released

    @on_connection
    def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            events: list[Event] = []
            for update in updates:
                row = conn.execute(
                    "UPDATE jobs SET progress = coalesce(?, progress) WHERE id = ? AND token = ?"
                    " AND state = 'active' RETURNING cancel_requested, queue",
                    (update.progress, update.id, update.token),
                ).fetchone()
                if row is None:
                    statuses[update.id] = LeaseStatus.LOST
                    continue
                if update.progress is not None:
                    events.append((row[1], update.id, "progress", now, update.progress))
                if row[0]:
                    statuses[update.id] = LeaseStatus.CANCEL
                if update.logs:
                    _append_logs(conn, update.id, update.logs, max_log_lines)
            insert_events(conn, events)
        self.notifier.notify()
        return statuses

    @on_connection
    def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        """One read (no write lock) per chunk of leases."""
        statuses: dict[str, LeaseStatus] = {}
        for start in range(0, len(leases), CHUNK):
            chunk = dict(leases[start : start + CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self.db.conn.execute(
                f"SELECT id, token, state, cancel_requested FROM jobs WHERE id IN ({marks})",
                list(chunk),
            ).fetchall()
            held = {row[0]: row for row in rows if row[1] == chunk[row[0]] and row[2] == "active"}
            for job_id in chunk:
                row = held.get(job_id)
                if row is None:
                    statuses[job_id] = LeaseStatus.LOST
                elif row[3]:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    @on_connection
    def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        with self.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE jobs SET stalls = stalls + 1, attempts = max(attempts - 1, 0),"
                " token = NULL, lease_until = NULL, cancel_requested = 0,"
                " state = CASE WHEN cancel_requested THEN 'cancelled'"
                " WHEN stalls < max_stalled THEN 'waiting' ELSE 'failed' END,"
                " finished_at = CASE WHEN stalls < max_stalled AND NOT cancel_requested"
                " THEN NULL ELSE ? END,"
                " expires_at = CASE WHEN stalls < max_stalled AND NOT cancel_requested"
                " THEN NULL ELSE ? END"
                " WHERE state = 'active' AND lease_until < ?"
                " RETURNING id, queue, task, state, stalls",
                (now, now + keep_failed_ms, now),
            ).fetchall()
            failed = [(stalled_error(r[4]), r[0]) for r in rows if r[3] == "failed"]
            conn.executemany("UPDATE jobs SET error = ? WHERE id = ?", failed)
            events: list[Event] = [(r[1], r[0], "stalled", now, None) for r in rows]
            errors = dict((job_id, error) for error, job_id in failed)
            events += [(r[1], r[0], r[3], now, errors.get(r[0])) for r in rows if r[3] != "waiting"]
            insert_events(conn, events)
            index_failed(conn, [(job_id, error) for error, job_id in failed])
            counts = Counts()
            for r in rows:
                counts.move(r[1], "active", r[3])
            report_finished(conn, [r[0] for r in rows if r[3] != "waiting"], now, counts)
            counts.apply(conn)
        if rows:
            self.notifier.notify()
        return [StalledJob(r[0], r[1], r[2], r[3] == "failed") for r in rows]

    @on_connection
    def purge_expired(self, now: int) -> int:
        """Delete in batches of short transactions, never holding the write lock for long."""
        with self.db.transaction() as conn:  # keep the newest EVENTS_KEPT events
            conn.execute(
                "DELETE FROM job_events WHERE seq <= (SELECT max(seq) FROM job_events) - ?",
                (EVENTS_KEPT,),
            )
        purged = 0
        while True:
            with self.db.transaction() as conn:
                rows = conn.execute(
                    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
                    " WHERE expires_at <= ? AND finished_at IS NOT NULL LIMIT ?)"
                    " RETURNING queue, state",
                    (now, _PURGE_BATCH),
                ).fetchall()
                counts = Counts()
                for queue, state in rows:
                    counts.add(queue, state, -1)
                counts.apply(conn)
            deleted = len(rows)
            purged += deleted
            if deleted < _PURGE_BATCH:
                return purged


def _append_logs(
    conn: sqlite3.Connection, job_id: str, logs: list[LogLine], max_lines: int
) -> None:
    (last,) = conn.execute(
        "SELECT coalesce(max(n), 0) FROM job_logs WHERE job_id = ?", (job_id,)
    ).fetchone()
    conn.executemany(
        "INSERT INTO job_logs (job_id, n, at, line) VALUES (?,?,?,?)",
        [(job_id, last + i, log.at, log.line) for i, log in enumerate(logs, 1)],
    )
    conn.execute(
        "DELETE FROM job_logs WHERE job_id = ? AND n <= ?",
        (job_id, last + len(logs) - max_lines),
    )
