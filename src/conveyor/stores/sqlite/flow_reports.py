"""Flow children report to their parents inside the transaction that finishes them.

Every SQLite transition that can give a job a final state (an outcome, a
stall, a release or a cancel) calls :func:`report_finished` with the ids it
touched. A step with no pending flow child anywhere costs one probe of a
partial index; otherwise the finished children among ``job_ids`` record
their result or error on their parent, the last one makes it waiting, and
under ``fail`` a failed or cancelled child fails it (which, in a nested
flow, reports the parent to its own parent in turn).

(A trigger would catch every path by itself, but SQLite then loads each
updated row for it: it cost about a fifth of the finish throughput.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.stores.flows import child_failed_error
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.keys import index_failed

_ANY_PENDING = "SELECT 1 FROM flow_children WHERE state IS NULL LIMIT 1"
_CHUNK = 500


def report_finished(
    conn: sqlite3.Connection, job_ids: Sequence[str], now: int, counts: Counts
) -> None:
    """Report those of ``job_ids`` that are finished, unreported flow children."""
    if not job_ids or conn.execute(_ANY_PENDING).fetchone() is None:
        return
    pending = list(job_ids)
    while pending:
        chunk, pending = pending[:_CHUNK], pending[_CHUNK:]
        pending += _report_chunk(conn, chunk, now, counts)


def _report_chunk(
    conn: sqlite3.Connection, job_ids: list[str], now: int, counts: Counts
) -> list[str]:
    """Report one chunk; returns the parents it failed (to report in turn)."""
    marks = ",".join("?" * len(job_ids))
    rows = conn.execute(
        "SELECT c.child_id, c.parent_id, j.state, j.queue, j.result, j.error, j.finished_at"
        " FROM flow_children c JOIN jobs j ON j.id = c.child_id"
        f" WHERE c.child_id IN ({marks}) AND c.state IS NULL"
        " AND j.state IN ('completed', 'failed', 'cancelled')",
        job_ids,
    ).fetchall()
    failed: list[str] = []
    for child_id, parent_id, state, queue, result, error, finished_at in rows:
        completed = state == "completed"
        conn.execute(
            "UPDATE flow_children SET state = ?, value = ? WHERE child_id = ?",
            (state, result if completed else error, child_id),
        )
        flow = conn.execute(
            "UPDATE flows SET pending = pending - 1 WHERE parent_id = ?"
            " RETURNING pending, policy, keep_ms",
            (parent_id,),
        ).fetchone()
        if flow is None:
            continue
        left, policy, keep_ms = flow
        at = finished_at or now
        if not completed and policy == "fail":
            error = child_failed_error(child_id, queue, state, error)
            if _fail_parent(conn, parent_id, error, at, keep_ms, counts):
                failed.append(parent_id)
        elif left <= 0:
            ready = conn.execute(
                "UPDATE jobs SET state = 'waiting', run_at = ?"
                " WHERE id = ? AND state = 'waiting-children' RETURNING queue",
                (at, parent_id),
            ).fetchone()
            if ready is not None:
                counts.move(ready[0], "waiting-children", "waiting")
    return failed


def _fail_parent(
    conn: sqlite3.Connection, parent_id: str, error: bytes, now: int, keep_ms: int, counts: Counts
) -> bool:
    row = conn.execute(
        "UPDATE jobs SET state = 'failed', finished_at = ?, expires_at = ?, error = ?"
        " WHERE id = ? AND state = 'waiting-children' RETURNING queue",
        (now, now + keep_ms, error, parent_id),
    ).fetchone()
    if row is None:
        return False
    counts.move(row[0], "waiting-children", "failed")
    conn.execute(
        "INSERT INTO job_events (queue, job_id, kind, at, data) VALUES (?,?,?,?,?)",
        (row[0], parent_id, "failed", now, error),
    )
    index_failed(conn, [(parent_id, error)])
    return True
