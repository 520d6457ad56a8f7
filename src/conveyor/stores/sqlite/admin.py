"""Reads and administration of the SQLite job store, and the worker registry."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from conveyor.clock import Clock
from conveyor.stores.base import (
    CancelResult,
    Cleaned,
    JobRecord,
    JobState,
    LogLine,
    QueueInfo,
    RemoveResult,
    WorkerInfo,
)
from conveyor.stores.notify import Notifier
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.flow_reports import report_finished
from conveyor.stores.sqlite.keys import unindex_failed
from conveyor.stores.sqlite.rows import (
    CHUNK,
    RECORD_COLUMNS,
    insert_events,
    job_record,
    pending_child,
)

_WORKER_DECODER = msgspec.json.Decoder(WorkerInfo)


def _cleanable(state: JobState) -> str:
    """What ``clean`` deletes and ``count_clean`` counts: jobs finished before a time (a
    seek of jobs_finished), or for an unfinished state created before it (of jobs_page)."""
    if state.is_finished:
        return "queue = ? AND state = ? AND finished_at < ?"
    return "queue = ? AND state = ? AND created_at < ?"


class SqliteJobAdmin:
    """Reads and administration of :class:`~conveyor.stores.sqlite.jobs.SqliteJobStore`."""

    db: Database
    clock: Clock
    notifier: Notifier

    @on_connection
    def get(self, job_id: str) -> JobRecord | None:
        row = self.db.conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return None if row is None else job_record(row)

    @on_connection
    def logs(self, job_id: str) -> list[LogLine]:
        rows = self.db.conn.execute(
            "SELECT at, line FROM job_logs WHERE job_id = ? ORDER BY n", (job_id,)
        ).fetchall()
        return [LogLine(at, line) for at, line in rows]

    @on_connection
    def counts(self) -> dict[str, dict[JobState, int]]:
        """From ``job_counts`` (``counts.py``): a row per queue and state, never the jobs."""
        conn = self.db.conn
        counts = {
            name: dict.fromkeys(JobState, 0) for (name,) in conn.execute("SELECT name FROM queues")
        }
        for queue, state, n in conn.execute("SELECT queue, state, n FROM job_counts"):
            counts.setdefault(queue, dict.fromkeys(JobState, 0))[JobState(state)] = n
        return counts

    @on_connection
    def oldest_waiting(self) -> dict[str, int]:
        """Per queue, the run_at of its earliest-created waiting job: one seek per queue."""
        rows = self.db.conn.execute(
            "SELECT q.name, (SELECT run_at FROM jobs WHERE queue = q.name AND state = 'waiting'"
            " ORDER BY created_at, id LIMIT 1) FROM queues q"
        ).fetchall()
        return {name: at for name, at in rows if at is not None}

    @on_connection
    def queues(self) -> list[QueueInfo]:
        rows = self.db.conn.execute("SELECT name, paused FROM queues ORDER BY name").fetchall()
        return [QueueInfo(name, bool(paused)) for name, paused in rows]

    @on_connection
    def set_paused(self, queue: str, paused: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO queues (name, paused) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (queue, int(paused)),
            )

    @on_connection
    def retry(self, job_id: str, now: int) -> bool:
        with self.db.transaction() as conn:
            which = "id = ? AND state IN ('failed', 'cancelled')"
            return _retry(conn, which, [job_id], now) == 1

    @on_connection
    def retry_failed(self, queue: str, limit: int, now: int) -> int:
        with self.db.transaction() as conn:
            # The longest-failed first: a seek of jobs_finished.
            which = (
                "seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'failed'"
                " AND finished_at IS NOT NULL ORDER BY finished_at, seq LIMIT ?)"
            )
            return _retry(conn, which, [queue, limit], now)

    @on_connection
    def promote(self, job_id: str, now: int) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET state = 'waiting', run_at = ?"
                " WHERE id = ? AND state = 'scheduled' RETURNING queue",
                (now, job_id),
            ).fetchone()
            if row is None:
                return False
            counts = Counts()
            counts.move(row[0], "scheduled", "waiting")
            counts.apply(conn)
        self.notifier.notify()
        return True

    @on_connection
    def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state, queue FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return CancelResult.MISSING
            state = JobState(row[0])
            if state.is_finished:
                return CancelResult.FINISHED
            if state is JobState.ACTIVE:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                return CancelResult.REQUESTED
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?, expires_at = ? WHERE id = ?",
                (now, now + keep_ms, job_id),
            )
            insert_events(conn, [(row[1], job_id, "cancelled", now, None)])
            counts = Counts()
            counts.move(row[1], row[0], "cancelled")
            report_finished(conn, [job_id], now, counts)
            counts.apply(conn)
        self.notifier.notify()
        return CancelResult.CANCELLED

    @on_connection
    def remove(self, job_id: str) -> RemoveResult:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state, queue FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return RemoveResult.MISSING
            if row[0] == JobState.ACTIVE:
                return RemoveResult.ACTIVE
            if pending_child(conn, [job_id]) is not None:
                return RemoveResult.PENDING_CHILD
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            counts = Counts()
            counts.add(row[1], row[0], -1)
            counts.apply(conn)
            return RemoveResult.REMOVED

    @on_connection
    def clean(self, queue: str, state: JobState, before: int, limit: int) -> Cleaned:
        with self.db.transaction() as conn:
            doomed = conn.execute(
                f"SELECT id FROM jobs WHERE {_cleanable(state)} ORDER BY seq LIMIT ?",
                (queue, state.value, before, limit),
            ).fetchall()
            ids = [row[0] for row in doomed]
            child = pending_child(conn, ids)
            if child is not None:
                return Cleaned(0, child)
            for first in range(0, len(ids), CHUNK):
                chunk = ids[first : first + CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", chunk)
            counts = Counts()
            counts.add(queue, state.value, -len(ids))
            counts.apply(conn)
            return Cleaned(len(ids))

    @on_connection
    def count_clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        (count,) = self.db.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {_cleanable(state)} LIMIT ?)",
            (queue, state.value, before, limit),
        ).fetchone()
        return int(count)

    # -- the worker registry ---------------------------------------------------

    @on_connection
    def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            conn.execute(
                "INSERT INTO workers (id, info, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET info = excluded.info,"
                " expires_at = excluded.expires_at",
                (worker.id, msgspec.json.encode(worker), now + ttl_ms),
            )
            conn.execute("DELETE FROM workers WHERE expires_at < ?", (now,))

    @on_connection
    def unregister(self, worker_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    @on_connection
    def workers(self) -> list[WorkerInfo]:
        rows = self.db.conn.execute(
            "SELECT info FROM workers WHERE expires_at >= ? ORDER BY id", (self.clock.now_ms(),)
        ).fetchall()
        return [_WORKER_DECODER.decode(info) for (info,) in rows]


def _retry(conn: sqlite3.Connection, which: str, params: list[Any], now: int) -> int:
    """Send the failed or cancelled jobs ``which`` selects back, attempts reset; how many.

    A flow parent some of whose children have not reported waits for them again.
    """
    before = conn.execute(f"SELECT id, queue, state FROM jobs WHERE {which}", params).fetchall()
    counts = Counts()
    for job_id, queue, old in before:
        (new,) = conn.execute(
            "UPDATE jobs SET state = CASE WHEN EXISTS (SELECT 1 FROM flows"
            " WHERE parent_id = jobs.id AND pending > 0) THEN 'waiting-children'"
            " ELSE 'waiting' END, attempts = 0, stalls = 0, run_at = ?,"
            " finished_at = NULL, expires_at = NULL, result = NULL, error = NULL"
            " WHERE id = ? RETURNING state",
            (now, job_id),
        ).fetchone()
        counts.move(queue, old, new)
    counts.apply(conn)
    unindex_failed(conn, [row[0] for row in before if row[2] == "failed"])
    return len(before)
