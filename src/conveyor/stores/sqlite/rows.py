"""SQL that several SQLite steps share: inserting jobs, job events, releasing leases.

Each function runs inside the caller's transaction (on the connection's thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from conveyor.stores.base import JobRecord, JobState, NewJob, released_state
from conveyor.stores.search import job_field_keys
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.flow_reports import report_finished

RECORD_COLUMNS = (
    "id, queue, task, state, priority, payload, options, attempts, stalls, max_stalled,"
    " created_at, run_at, started_at, finished_at, progress, result, error, worker,"
    " lease_until, cancel_requested, fence"
)
"""The columns of a :class:`JobRecord`, in its field order."""

Event = tuple[str, str, str, int, bytes | None]
"""A row of job_events to insert: queue, job_id, kind, at, data."""

CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite caps the number of parameters of a statement)."""


def job_record(row: tuple[Any, ...]) -> JobRecord:
    fields = list(row)
    fields[3] = JobState(fields[3])
    fields[19] = bool(fields[19])
    return JobRecord(*fields)


def insert_events(conn: sqlite3.Connection, events: list[Event]) -> None:
    if events:
        conn.executemany(
            "INSERT INTO job_events (queue, job_id, kind, at, data) VALUES (?,?,?,?,?)", events
        )


def ensure_queues(conn: sqlite3.Connection, names: Collection[str]) -> None:
    """Record queues (known queues are listed and counted even when empty)."""
    if names:
        conn.executemany(
            "INSERT INTO queues (name) VALUES (?) ON CONFLICT DO NOTHING",
            [(name,) for name in names],
        )


def insert_job(conn: sqlite3.Connection, job: NewJob, now: int, counts: Counts) -> bool:
    """Insert one job (and its search keys) unless its id exists."""
    state = released_state(job.run_at, now).value
    cursor = conn.execute(
        "INSERT INTO jobs (id, queue, task, state, priority, run_at, created_at,"
        " payload, options, max_stalled, keyed) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            job.id,
            job.queue,
            job.task,
            state,
            job.priority,
            job.run_at,
            job.created_at,
            job.payload,
            job.options,
            job.max_stalled,
            1 if job.search_keys else 0,
        ),
    )
    if cursor.rowcount != 1:
        return False
    counts.add(job.queue, state)
    if job.search_keys:
        conn.executemany(
            "INSERT OR IGNORE INTO job_keys (job_id, key, created_at) VALUES (?,?,?)",
            [(job.id, key, job.created_at) for key in job_field_keys(job.search_keys)],
        )
    return True


def release_leases(
    conn: sqlite3.Connection,
    leases: Sequence[tuple[str, str]],
    now: int,
    keep_ms: int,
    counts: Counts,
) -> int:
    """Give held jobs back as if never claimed; a job to cancel ends cancelled."""
    released = 0
    events: list[Event] = []
    for job_id, token in leases:
        row = conn.execute(
            "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled'"
            " WHEN run_at <= ? THEN 'waiting' ELSE 'scheduled' END,"
            " finished_at = CASE WHEN cancel_requested THEN ? END,"
            " expires_at = CASE WHEN cancel_requested THEN ? END,"
            " attempts = max(attempts - 1, 0), token = NULL,"
            " lease_until = NULL, cancel_requested = 0"
            " WHERE id = ? AND token = ? AND state = 'active' RETURNING state, queue",
            (now, now, now + keep_ms, job_id, token),
        ).fetchone()
        if row is not None:
            released += 1
            counts.move(row[1], "active", row[0])
            if row[0] == "cancelled":
                events.append((row[1], job_id, "cancelled", now, None))
    insert_events(conn, events)
    report_finished(conn, [event[1] for event in events], now, counts)  # a cancelled child
    return released


def pending_child(conn: sqlite3.Connection, job_ids: Sequence[str]) -> str | None:
    """One of ``job_ids`` that is a flow child its parent still waits for (not to delete)."""
    for first in range(0, len(job_ids), CHUNK):
        chunk = job_ids[first : first + CHUNK]
        marks = ",".join("?" * len(chunk))
        row = conn.execute(
            f"SELECT child_id FROM flow_children WHERE child_id IN ({marks}) AND state IS NULL"
            " LIMIT 1",
            chunk,
        ).fetchone()
        if row is not None:
            return str(row[0])
    return None
