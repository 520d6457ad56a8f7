"""Queue limits in the SQLite file: what a claim may take, and the limits store.

Every claim of a queue reads its row of ``queue_limits`` and its rows of
``task_limits`` (two primary-key lookups) inside the claim's transaction, so
all processes on the file obey the same limits. With limits set, a claim
also counts the queue's active jobs (an index range over the active rows
only) and keeps the sliding log of claims (``queue_claims``, one row per
claim step, pruned as it leaves the window).

A task at its limit must not make the claim step over its waiting jobs one
by one. So when some limited task has fewer free slots than the claim
wants, the claim picks per task instead: it lists the queue's waiting tasks
with a loose index scan (one seek per distinct task on ``jobs_ready_task``,
made when the first task limit is set), takes the first few ready jobs of
each task that has room (one seek each), and merges them in claim order.
Its cost grows with the number of distinct waiting tasks in the queue, not
with the number of blocked jobs.
"""

from __future__ import annotations

import sqlite3

from conveyor.clock import Clock
from conveyor.stores.limits import Gate, QueueLimits, open_gate
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.rows import release_leases

_TASK_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_ready_task ON jobs (queue, task, priority DESC, run_at, seq)"
    " WHERE state = 'waiting'"
)
_WAITING_TASKS = (
    "WITH RECURSIVE t(task) AS ("
    " SELECT (SELECT min(task) FROM jobs WHERE queue = :queue AND state = 'waiting')"
    " UNION ALL SELECT (SELECT min(task) FROM jobs"
    " WHERE queue = :queue AND state = 'waiting' AND task > t.task)"
    " FROM t WHERE t.task IS NOT NULL)"
    " SELECT task FROM t WHERE task IS NOT NULL"
)


def read_limits(conn: sqlite3.Connection, queue: str) -> QueueLimits | None:
    row = conn.execute(
        "SELECT concurrency, rate, period_ms, backoff_until FROM queue_limits WHERE queue = ?",
        (queue,),
    ).fetchone()
    tasks = dict(
        conn.execute("SELECT task, concurrency FROM task_limits WHERE queue = ?", (queue,))
    )
    if row is None and not tasks:
        return None
    concurrency, rate, period_ms, backoff_until = row or (None, None, 1000, 0)
    return QueueLimits(concurrency, rate, period_ms, tasks, backoff_until)


def claim_gate(conn: sqlite3.Connection, queue: str, want: int, now: int) -> Gate:
    """What a claim of up to ``want`` jobs of ``queue`` may take now."""
    limits = read_limits(conn, queue)
    if limits is None:
        return Gate(want)
    if limits.backoff_until > now:
        return Gate(0, limits.backoff_until)
    active, used, oldest = 0, 0, None
    if limits.concurrency is not None:
        (active,) = conn.execute(
            "SELECT count(*) FROM jobs WHERE queue = ? AND state = 'active'", (queue,)
        ).fetchone()
    if limits.rate is not None:
        conn.execute(
            "DELETE FROM queue_claims WHERE queue = ? AND at <= ?", (queue, now - limits.period_ms)
        )
        used, oldest = conn.execute(
            "SELECT coalesce(sum(n), 0), min(at) FROM queue_claims WHERE queue = ?", (queue,)
        ).fetchone()
    task_active: dict[str, int] = {}
    if limits.tasks:
        marks = ",".join("?" * len(limits.tasks))
        task_active = dict(
            conn.execute(
                "SELECT task, count(*) FROM jobs WHERE queue = ? AND state = 'active'"
                f" AND task IN ({marks}) GROUP BY task",
                (queue, *limits.tasks),
            )
        )
    return open_gate(
        limits,
        want,
        now,
        active=active,
        claims_in_window=used,
        oldest_claim=oldest,
        task_active=task_active,
    )


def pick_ready(conn: sqlite3.Connection, queue: str, gate: Gate) -> list[int]:
    """The seqs of up to ``gate.room`` ready jobs in claim order, within each task's room."""
    room = gate.task_room or {}
    candidates: list[tuple[int, int, int]] = []
    for (task,) in conn.execute(_WAITING_TASKS, {"queue": queue}).fetchall():
        cap = min(gate.room, room.get(task, gate.room))
        if cap > 0:
            candidates += conn.execute(
                "SELECT -priority, run_at, seq FROM jobs WHERE queue = ? AND state = 'waiting'"
                " AND task = ? ORDER BY priority DESC, run_at, seq LIMIT ?",
                (queue, task, cap),
            ).fetchall()
    candidates.sort()
    return [seq for _, _, seq in candidates[: gate.room]]


def log_claims(conn: sqlite3.Connection, queue: str, gate: Gate, now: int, claimed: int) -> None:
    if gate.rated and claimed:
        conn.execute(
            "INSERT INTO queue_claims (queue, at, n) VALUES (?, ?, ?)", (queue, now, claimed)
        )


class SqliteLimitsStore:
    """A :class:`~conveyor.stores.limits.LimitsStore` in the SQLite file."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @on_connection
    def set_limits(
        self, queue: str, concurrency: int | None, rate: int | None, period_ms: int
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO queue_limits (queue, concurrency, rate, period_ms) VALUES (?,?,?,?)"
                " ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency,"
                " rate = excluded.rate, period_ms = excluded.period_ms",
                (queue, concurrency, rate, period_ms),
            )

    @on_connection
    def set_task_concurrency(self, queue: str, task: str, limit: int | None) -> None:
        with self.db.transaction() as conn:
            if limit is None:
                conn.execute("DELETE FROM task_limits WHERE queue = ? AND task = ?", (queue, task))
                return
            conn.execute(_TASK_INDEX)  # only files that use task limits pay for this index
            conn.execute(
                "INSERT INTO task_limits (queue, task, concurrency) VALUES (?,?,?)"
                " ON CONFLICT (queue, task) DO UPDATE SET concurrency = excluded.concurrency",
                (queue, task, limit),
            )

    @on_connection
    def get_limits(self, queue: str) -> QueueLimits:
        return read_limits(self.db.conn, queue) or QueueLimits()

    @on_connection
    def backoff(self, queue: str, until: int, leases: list[tuple[str, str]], keep_ms: int) -> int:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO queue_limits (queue, backoff_until) VALUES (?, ?)"
                " ON CONFLICT (queue) DO UPDATE"
                " SET backoff_until = max(backoff_until, excluded.backoff_until)",
                (queue, until),
            )
            counts = Counts()
            released = release_leases(conn, leases, self.clock.now_ms(), keep_ms, counts)
            counts.apply(conn)
            return released
