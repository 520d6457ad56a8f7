"""The worker's side of the SQLite job store: enqueue, and finish + claim in one transaction.

Several processes may share the file: every write takes SQLite's write lock
up front (``BEGIN IMMEDIATE``), so a claim reads and updates the ready rows
without any other process in between, and a job is never held by two
leases. An idle poll (nothing finished, nothing ready) only reads.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

from conveyor.clock import Clock
from conveyor.stores.base import ClaimedJob, JobEventKind, JobState, NewJob, Outcome, released_state
from conveyor.stores.limits import earliest
from conveyor.stores.notify import Notifier
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.flow_reports import report_finished
from conveyor.stores.sqlite.keys import index_failed
from conveyor.stores.sqlite.limits import claim_gate, log_claims, pick_ready
from conveyor.stores.sqlite.rows import Event, ensure_queues, insert_events, insert_job


class SqliteClaims:
    """Enqueue and the exchange step of :class:`~conveyor.stores.sqlite.jobs.SqliteJobStore`."""

    db: Database
    clock: Clock
    notifier: Notifier
    known_queues: set[str]
    """Queues this process has recorded (so an enqueue records a queue once)."""
    untrimmed: dict[tuple[str, str], int]
    """Finishes per (queue, state) since that count-retention trim last ran."""
    wake_at: int | None
    """When the last claim a rate limit or back-off stopped may try again."""

    @on_connection
    def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        new_queues = {job.queue for job in jobs} - self.known_queues
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            ensure_queues(conn, new_queues)
            counts = Counts()
            created = [insert_job(conn, job, now, counts) for job in jobs]
            counts.apply(conn)
        self.known_queues |= new_queues  # only once committed
        return created

    @on_connection
    def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        if not finished and not self._anything_to_claim(queues):
            self.wake_at = None
            return [], []  # an idle poll takes no write lock
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            events: list[Event] = []
            counts = Counts()
            accepted = [self._finish(conn, outcome, now, events, counts) for outcome in finished]
            insert_events(conn, events)
            index_failed(conn, [(e[1], e[4]) for e in events if e[2] == "failed"])
            done = [o.id for o, ok in zip(finished, accepted, strict=True) if ok]
            report_finished(conn, done, now, counts)
            if any(o.keep is not None for o in finished):
                self._trim(conn, finished, accepted, counts)
            claimed = (
                self._claim(conn, queues, claim, worker, lease_ms, now, counts) if claim else []
            )
            counts.apply(conn)
        if finished:
            self.notifier.notify()
        return accepted, claimed

    def _anything_to_claim(self, queues: Sequence[str]) -> bool:
        marks = ",".join("?" * len(queues))
        row = self.db.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting' AND queue IN ({marks}))"
            f" OR EXISTS (SELECT 1 FROM jobs WHERE state = 'scheduled' AND queue IN ({marks})"
            " AND run_at <= ?)",
            [*queues, *queues, self.clock.now_ms()],
        ).fetchone()
        return bool(row[0])

    def _finish(
        self, conn: sqlite3.Connection, o: Outcome, now: int, events: list[Event], counts: Counts
    ) -> bool:
        if o.state in (JobState.WAITING, JobState.SCHEDULED):
            # A job whose cancellation was asked for is not retried: it ends cancelled.
            row = conn.execute(
                "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE ? END,"
                " finished_at = CASE WHEN cancel_requested THEN ? END,"
                " expires_at = CASE WHEN cancel_requested THEN ? END,"
                " run_at = ?, error = ?, progress = coalesce(?, progress), token = NULL,"
                " lease_until = NULL, cancel_requested = 0"
                " WHERE id = ? AND token = ? AND state = 'active' RETURNING state",
                (
                    released_state(o.run_at, now).value,
                    now,
                    o.expires_at,
                    o.run_at,
                    o.error,
                    o.progress,
                    o.id,
                    o.token,
                ),
            ).fetchone()
            if row is None:
                return False
            counts.move(o.queue, "active", row[0])
            kind = JobEventKind.CANCELLED if row[0] == "cancelled" else JobEventKind.RETRYING
            events.append((o.queue, o.id, kind.value, now, o.error))
            return True
        cursor = conn.execute(
            "UPDATE jobs SET state = ?, finished_at = ?, expires_at = ?, result = ?,"
            " error = ?, progress = coalesce(?, progress), token = NULL,"
            " lease_until = NULL, cancel_requested = 0"
            " WHERE id = ? AND token = ? AND state = 'active'",
            (
                o.state.value,
                o.finished_at,
                o.expires_at,
                o.result,
                o.error,
                o.progress,
                o.id,
                o.token,
            ),
        )
        if cursor.rowcount != 1:
            return False
        counts.move(o.queue, "active", o.state.value)
        events.append((o.queue, o.id, o.state.value, now, o.error))
        return True

    def _trim(
        self,
        conn: sqlite3.Connection,
        finished: Sequence[Outcome],
        accepted: list[bool],
        counts: Counts,
    ) -> None:
        """Trim each queue's finished jobs in a state back to the newest ``keep``.

        The trim skips the rows it keeps, so it runs once per ``keep // 10``
        finished jobs (per process), not per batch: a queue holds at most
        ``keep + keep // 10`` finished jobs of a state at any moment.
        """
        limits: dict[tuple[str, str], int] = {}
        for outcome, ok in zip(finished, accepted, strict=True):
            if ok and outcome.keep is not None:
                key = (outcome.queue, outcome.state.value)
                limits[key] = min(limits.get(key, outcome.keep), outcome.keep)
                self.untrimmed[key] = self.untrimmed.get(key, 0) + 1
        for (queue, state), keep in limits.items():
            if self.untrimmed[queue, state] < max(1, keep // 10):
                continue
            self.untrimmed[queue, state] = 0
            cursor = conn.execute(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
                " WHERE queue = ? AND state = ? AND finished_at IS NOT NULL"
                " ORDER BY finished_at DESC, seq DESC LIMIT -1 OFFSET ?)",
                (queue, state, keep),
            )
            counts.add(queue, state, -cursor.rowcount)

    def _claim(
        self,
        conn: sqlite3.Connection,
        queues: Sequence[str],
        limit: int,
        worker: str,
        lease_ms: int,
        now: int,
        counts: Counts,
    ) -> list[ClaimedJob]:
        paused = {row[0] for row in conn.execute("SELECT name FROM queues WHERE paused = 1")}
        token = secrets.token_hex(8)
        claimed: list[ClaimedJob] = []
        self.wake_at = None
        for queue in queues:
            if queue in paused:
                continue
            due = conn.execute(
                "UPDATE jobs SET state = 'waiting'"
                " WHERE queue = ? AND state = 'scheduled' AND run_at <= ?",
                (queue, now),
            )
            counts.move(queue, "scheduled", "waiting", due.rowcount)
            gate = claim_gate(conn, queue, limit - len(claimed), now)
            self.wake_at = earliest(self.wake_at, gate.wake_at)
            if gate.room <= 0:
                continue
            if gate.caps_tasks():
                seqs = pick_ready(conn, queue, gate)
                which = f"seq IN ({','.join('?' * len(seqs))})"
                params: list[Any] = [*seqs]
            else:
                which = (
                    "seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'waiting'"
                    " ORDER BY priority DESC, run_at, seq LIMIT ?)"
                )
                params = [queue, gate.room]
            rows = conn.execute(
                "UPDATE jobs SET state = 'active', token = ?, worker = ?, lease_until = ?,"
                " started_at = ?, attempts = attempts + 1, fence = fence + 1,"
                f" cancel_requested = 0 WHERE {which}"
                " RETURNING id, queue, task, payload, options, attempts, run_at, created_at,"
                " priority, seq, fence",
                (token, worker, now + lease_ms, now, *params),
            ).fetchall()
            log_claims(conn, queue, gate, now, len(rows))
            counts.move(queue, "waiting", "active", len(rows))
            rows.sort(key=lambda r: (-r[8], r[6], r[9]))
            claimed.extend(
                ClaimedJob(r[0], r[1], r[2], r[3], r[4], r[5], token, r[6], r[7], now, r[8], r[10])
                for r in rows
            )
            if len(claimed) >= limit:
                break
        return claimed

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        # No push across processes: poll; sooner when a rate limit's next slot opens sooner.
        if self.wake_at is not None:
            poll_interval = min(
                poll_interval, max(0.001, (self.wake_at - self.clock.now_ms()) / 1000)
            )
        await self.clock.sleep(poll_interval)
