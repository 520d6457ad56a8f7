"""The error keys of failed jobs in ``job_keys``: written when a job fails, dropped when
it is retried (a deleted job's keys go with it: the ``job_keys_deleted`` trigger, for a
job marked ``keyed``).

Every SQLite path that fails a job (an outcome, the stall sweep, a flow parent
failed by its child) calls :func:`index_failed` in its transaction; every path
that takes a job out of the failed state but a delete calls :func:`unindex_failed`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.stores.search import ERROR_PREFIXES, error_keys


def index_failed(conn: sqlite3.Connection, failed: Sequence[tuple[str, bytes | None]]) -> None:
    """Index the error keys of jobs that just failed: ``(job_id, error)`` pairs."""
    rows = [(job_id, key, job_id) for job_id, error in failed for key in error_keys(error)]
    if rows:
        conn.executemany(
            "INSERT OR IGNORE INTO job_keys (job_id, key, created_at)"
            " SELECT ?, ?, created_at FROM jobs WHERE id = ?",
            rows,
        )
        conn.executemany(
            "UPDATE jobs SET keyed = 1 WHERE id = ? AND NOT keyed",
            [(job_id,) for job_id in dict.fromkeys(row[0] for row in rows)],
        )


def unindex_failed(conn: sqlite3.Connection, job_ids: Sequence[str]) -> None:
    """Drop the error keys of jobs that are no longer failed (retried)."""
    conn.executemany(
        "DELETE FROM job_keys WHERE job_id = ? AND substr(key, 1, 2) IN (?, ?)",
        [(job_id, *ERROR_PREFIXES) for job_id in job_ids],
    )
