"""The embedded job store: one SQLite file in WAL mode, one transaction per step.

Several processes may share the file: every write takes SQLite's write lock
up front (``BEGIN IMMEDIATE``), so a claim reads and updates the ready rows
without any other process in between, and a job is never held by two
leases. Each ``*_sync`` method is one transaction; the async methods send it
to the connection's thread.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor.errors import ConflictError
from conveyor.stores.base import (
    EVENTS_KEPT,
    CancelResult,
    ClaimedJob,
    JobEvent,
    JobEventKind,
    JobRecord,
    JobState,
    LeaseStatus,
    LogLine,
    NewJob,
    Outcome,
    ProgressUpdate,
    QueueInfo,
    StalledJob,
    WorkerInfo,
    now_ms,
    released_state,
    stalled_error,
)
from conveyor.stores.limits import earliest
from conveyor.stores.notify import Notifier, read_when_ready
from conveyor.stores.sqlite.database import Database, path_from_url
from conveyor.stores.sqlite.flow_reports import report_finished
from conveyor.stores.sqlite.limits import claim_gate, log_claims, pick_ready

_RECORD_COLUMNS = (
    "id, queue, task, state, priority, payload, options, attempts, stalls, max_stalled,"
    " created_at, run_at, started_at, finished_at, progress, result, error, worker,"
    " lease_until, cancel_requested, fence"
)
_SCHEDULED, _WAITING, _ACTIVE = JobState.SCHEDULED.value, JobState.WAITING.value, "active"
_WORKER_DECODER = msgspec.json.Decoder(WorkerInfo)
_EVENT_POLL_SECONDS = 0.05
"""How often a reader looks for events written by other processes (this one's wake it)."""

Event = tuple[str, str, str, int, bytes | None]
"""A row of job_events to insert: queue, job_id, kind, at, data."""


def _insert_events(conn: sqlite3.Connection, events: list[Event]) -> None:
    if events:
        conn.executemany(
            "INSERT INTO job_events (queue, job_id, kind, at, data) VALUES (?,?,?,?,?)", events
        )


def _record(row: tuple[Any, ...]) -> JobRecord:
    fields = list(row)
    fields[3] = JobState(fields[3])
    fields[19] = bool(fields[19])
    return JobRecord(*fields)


def insert_job(conn: sqlite3.Connection, job: NewJob, now: int) -> bool:
    """Insert one job unless its id exists (inside the caller's transaction)."""
    cursor = conn.execute(
        "INSERT INTO jobs (id, queue, task, state, priority, run_at, created_at,"
        " payload, options, max_stalled) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            job.id,
            job.queue,
            job.task,
            released_state(job.run_at, now).value,
            job.priority,
            job.run_at,
            job.created_at,
            job.payload,
            job.options,
            job.max_stalled,
        ),
    )
    return cursor.rowcount == 1


def release_leases(
    conn: sqlite3.Connection, leases: Sequence[tuple[str, str]], now: int, keep_ms: int
) -> int:
    """Give held jobs back as if never claimed (inside the caller's transaction)."""
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
            if row[0] == "cancelled":
                events.append((row[1], job_id, "cancelled", now, None))
    _insert_events(conn, events)
    report_finished(conn, [event[1] for event in events])  # a cancelled flow child
    return released


class SqliteJobStore:
    """A :class:`~conveyor.stores.base.JobStore` in one SQLite file."""

    def __init__(self, url: str, *, synchronous: str = "NORMAL", timeout: float = 5.0) -> None:
        self.url = url
        self.db = Database(path_from_url(url), synchronous=synchronous, busy_timeout_s=timeout)
        self._known_queues: set[str] = set()
        self._untrimmed: dict[tuple[str, str], int] = {}
        self._notifier = Notifier()
        self._wake_at: int | None = None  # when a claim a limit stopped may try again

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.run(self.db.conn.execute, "SELECT 1")

    # -- enqueue -----------------------------------------------------------

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        return await self.db.run(self.enqueue_sync, jobs)

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[bool]:
        now = now_ms()
        created: list[bool] = []
        new_queues = {job.queue for job in jobs} - self._known_queues
        with self.db.transaction() as conn:
            if new_queues:
                conn.executemany(
                    "INSERT INTO queues (name) VALUES (?) ON CONFLICT DO NOTHING",
                    [(name,) for name in new_queues],
                )
            for job in jobs:
                created.append(insert_job(conn, job, now))
        self._known_queues |= new_queues  # only once committed
        return created

    # -- the worker's round trip -------------------------------------------

    async def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        answer = await self.db.run(self.exchange_sync, finished, queues, claim, worker, lease_ms)
        if finished:
            self._notifier.notify()
        return answer

    def exchange_sync(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        if not finished and not self._anything_to_claim(queues):
            self._wake_at = None
            return [], []  # an idle poll takes no write lock
        with self.db.transaction() as conn:
            now = now_ms()
            events: list[Event] = []
            accepted = [self._finish(conn, outcome, now, events) for outcome in finished]
            _insert_events(conn, events)
            report_finished(conn, [o.id for o, ok in zip(finished, accepted, strict=True) if ok])
            if any(o.keep is not None for o in finished):
                self._trim(conn, finished, accepted)
            claimed = self._claim(conn, queues, claim, worker, lease_ms, now) if claim else []
        return accepted, claimed

    def _anything_to_claim(self, queues: Sequence[str]) -> bool:
        marks = ",".join("?" * len(queues))
        row = self.db.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting' AND queue IN ({marks}))"
            f" OR EXISTS (SELECT 1 FROM jobs WHERE state = 'scheduled' AND queue IN ({marks})"
            " AND run_at <= ?)",
            [*queues, *queues, now_ms()],
        ).fetchone()
        return bool(row[0])

    def _finish(self, conn: sqlite3.Connection, o: Outcome, now: int, events: list[Event]) -> bool:
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
        events.append((o.queue, o.id, o.state.value, now, o.error))
        return True

    def _trim(
        self, conn: sqlite3.Connection, finished: Sequence[Outcome], accepted: list[bool]
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
                self._untrimmed[key] = self._untrimmed.get(key, 0) + 1
        for (queue, state), keep in limits.items():
            if self._untrimmed[queue, state] < max(1, keep // 10):
                continue
            self._untrimmed[queue, state] = 0
            conn.execute(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
                " WHERE queue = ? AND state = ? AND finished_at IS NOT NULL"
                " ORDER BY finished_at DESC, seq DESC LIMIT -1 OFFSET ?)",
                (queue, state, keep),
            )

    def _claim(
        self,
        conn: sqlite3.Connection,
        queues: Sequence[str],
        limit: int,
        worker: str,
        lease_ms: int,
        now: int,
    ) -> list[ClaimedJob]:
        paused = {row[0] for row in conn.execute("SELECT name FROM queues WHERE paused = 1")}
        token = secrets.token_hex(8)
        claimed: list[ClaimedJob] = []
        self._wake_at = None
        for queue in queues:
            if queue in paused:
                continue
            conn.execute(
                "UPDATE jobs SET state = 'waiting'"
                " WHERE queue = ? AND state = 'scheduled' AND run_at <= ?",
                (queue, now),
            )
            gate = claim_gate(conn, queue, limit - len(claimed), now)
            self._wake_at = earliest(self._wake_at, gate.wake_at)
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
            rows.sort(key=lambda r: (-r[8], r[6], r[9]))
            claimed.extend(
                ClaimedJob(r[0], r[1], r[2], r[3], r[4], r[5], token, r[6], r[7], now, r[8], r[10])
                for r in rows
            )
            if len(claimed) >= limit:
                break
        return claimed

    # -- leases ------------------------------------------------------------

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        # No push across processes: poll; sooner when a rate limit's next slot opens sooner.
        if self._wake_at is not None:
            poll_interval = min(poll_interval, max(0.001, (self._wake_at - now_ms()) / 1000))
        await asyncio.sleep(poll_interval)

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        return await self.db.run(self._renew_sync, leases, lease_ms)

    def _renew_sync(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self.db.transaction() as conn:
            until = now_ms() + lease_ms
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

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        released = await self.db.run(self._release_sync, leases, keep_ms)
        self._notifier.notify()
        return released

    def _release_sync(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        with self.db.transaction() as conn:
            return release_leases(conn, leases, now_ms(), keep_ms)

    async def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        statuses = await self.db.run(self._update_progress_sync, updates, max_log_lines)
        self._notifier.notify()
        return statuses

    def _update_progress_sync(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        with self.db.transaction() as conn:
            now = now_ms()
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
                    self._append_logs(conn, update.id, update.logs, max_log_lines)
            _insert_events(conn, events)
        return statuses

    def _append_logs(
        self, conn: sqlite3.Connection, job_id: str, logs: list[LogLine], max_lines: int
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

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        return await self.db.run(self._check_leases_sync, leases)

    def _check_leases_sync(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        """One read (no write lock) per 500 leases."""
        statuses: dict[str, LeaseStatus] = {}
        for start in range(0, len(leases), 500):
            chunk = dict(leases[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.conn.execute(
                f"SELECT id, token, state, cancel_requested FROM jobs WHERE id IN ({marks})",
                list(chunk),
            ).fetchall()
            held = {row[0]: row for row in rows if row[1] == chunk[row[0]] and row[2] == _ACTIVE}
            for job_id in chunk:
                row = held.get(job_id)
                if row is None:
                    statuses[job_id] = LeaseStatus.LOST
                elif row[3]:
                    statuses[job_id] = LeaseStatus.CANCEL
        return statuses

    async def events_start(self) -> str:
        return await self.db.run(self._events_start_sync)

    def _events_start_sync(self) -> str:
        (last,) = self.db.conn.execute("SELECT coalesce(max(seq), 0) FROM job_events").fetchone()
        return str(last)

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        async def read() -> tuple[str, list[JobEvent]]:
            return await self.db.run(self._read_events_sync, int(cursor), queues, limit)

        return await read_when_ready(read, self._notifier, block, _EVENT_POLL_SECONDS)

    def _read_events_sync(
        self, after: int, queues: Sequence[str] | None, limit: int
    ) -> tuple[str, list[JobEvent]]:
        rows = self.db.conn.execute(
            "SELECT seq, queue, job_id, kind, at, data FROM job_events WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        wanted = None if queues is None else set(queues)
        events = [
            JobEvent(JobEventKind(kind), job_id, queue, at, data)
            for _, queue, job_id, kind, at, data in rows
            if wanted is None or queue in wanted
        ]
        return str(rows[-1][0] if rows else after), events

    async def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        stalled = await self.db.run(self._sweep_stalled_sync, now, keep_failed_ms)
        if stalled:
            self._notifier.notify()
        return stalled

    def _sweep_stalled_sync(self, now: int, keep_failed_ms: int) -> list[StalledJob]:
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
            _insert_events(conn, events)
            report_finished(conn, [r[0] for r in rows if r[3] != "waiting"])
        return [StalledJob(r[0], r[1], r[2], r[3] == "failed") for r in rows]

    async def purge_expired(self, now: int) -> int:
        return await self.db.run(self._purge_expired_sync, now)

    def _purge_expired_sync(self, now: int, batch: int = 1_000) -> int:
        """Delete in batches of short transactions, never holding the write lock for long."""
        with self.db.transaction() as conn:  # keep the newest EVENTS_KEPT events
            conn.execute(
                "DELETE FROM job_events WHERE seq <= (SELECT max(seq) FROM job_events) - ?",
                (EVENTS_KEPT,),
            )
        purged = 0
        while True:
            with self.db.transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
                    " WHERE expires_at <= ? AND finished_at IS NOT NULL LIMIT ?)",
                    (now, batch),
                ).rowcount
            purged += deleted
            if deleted < batch:
                return purged

    # -- reads and administration -----------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        return await self.db.run(self.get_sync, job_id)

    def get_sync(self, job_id: str) -> JobRecord | None:
        row = self.db.conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return None if row is None else _record(row)

    async def logs(self, job_id: str) -> list[LogLine]:
        return await self.db.run(self.logs_sync, job_id)

    def logs_sync(self, job_id: str) -> list[LogLine]:
        rows = self.db.conn.execute(
            "SELECT at, line FROM job_logs WHERE job_id = ? ORDER BY n", (job_id,)
        ).fetchall()
        return [LogLine(at, line) for at, line in rows]

    async def list_jobs(
        self, queue: str | None, state: JobState, offset: int, limit: int
    ) -> list[JobRecord]:
        return await self.db.run(self.list_jobs_sync, queue, state, offset, limit)

    def list_jobs_sync(
        self, queue: str | None, state: JobState, offset: int, limit: int
    ) -> list[JobRecord]:
        where, params = "state = ?", [state.value]
        if queue is not None:
            where, params = "queue = ? AND state = ?", [queue, state.value]
        rows = self.db.conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM jobs WHERE {where}"
            " ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [_record(row) for row in rows]

    async def counts(self) -> dict[str, dict[JobState, int]]:
        return await self.db.run(self.counts_sync)

    def counts_sync(self) -> dict[str, dict[JobState, int]]:
        conn = self.db.conn
        counts = {
            name: dict.fromkeys(JobState, 0) for (name,) in conn.execute("SELECT name FROM queues")
        }
        for queue, state, n in conn.execute(
            "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
        ):
            counts.setdefault(queue, dict.fromkeys(JobState, 0))[JobState(state)] = n
        return counts

    async def oldest_waiting(self) -> dict[str, int]:
        return await self.db.run(self._oldest_waiting_sync)

    def _oldest_waiting_sync(self) -> dict[str, int]:
        rows = self.db.conn.execute(
            "SELECT q.name, (SELECT min(run_at) FROM jobs"
            " WHERE queue = q.name AND state = 'waiting') FROM queues q"
        ).fetchall()
        return {name: at for name, at in rows if at is not None}

    async def queues(self) -> list[QueueInfo]:
        return await self.db.run(self.queues_sync)

    def queues_sync(self) -> list[QueueInfo]:
        rows = self.db.conn.execute("SELECT name, paused FROM queues ORDER BY name").fetchall()
        return [QueueInfo(name, bool(paused)) for name, paused in rows]

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.db.run(self.set_paused_sync, queue, paused)

    def set_paused_sync(self, queue: str, paused: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO queues (name, paused) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (queue, int(paused)),
            )

    async def retry(self, job_id: str, now: int) -> bool:
        return await self.db.run(self.retry_sync, job_id, now)

    def retry_sync(self, job_id: str, now: int) -> bool:
        with self.db.transaction() as conn:
            # A flow parent some of whose children have not reported waits for them again.
            cursor = conn.execute(
                "UPDATE jobs SET state = CASE WHEN EXISTS (SELECT 1 FROM flows"
                " WHERE parent_id = jobs.id AND pending > 0) THEN 'waiting-children'"
                " ELSE 'waiting' END, attempts = 0, stalls = 0, run_at = ?,"
                " finished_at = NULL, expires_at = NULL, result = NULL, error = NULL"
                " WHERE id = ? AND state IN ('failed', 'cancelled')",
                (now, job_id),
            )
            return cursor.rowcount == 1

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        result = await self.db.run(self.cancel_sync, job_id, now, keep_ms)
        self._notifier.notify()
        return result

    def cancel_sync(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
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
            _insert_events(conn, [(row[1], job_id, "cancelled", now, None)])
            report_finished(conn, [job_id])
            return CancelResult.CANCELLED

    async def remove(self, job_id: str) -> bool:
        return await self.db.run(self.remove_sync, job_id)

    def remove_sync(self, job_id: str) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return False
            if row[0] == _ACTIVE:
                raise ConflictError(f"job {job_id} is active; cancel it first")
            _refuse_pending_children(conn, [job_id])
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return True

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        return await self.db.run(self.clean_sync, queue, state, before, limit)

    def clean_sync(self, queue: str, state: JobState, before: int, limit: int) -> int:
        if state is JobState.ACTIVE:
            raise ConflictError("active jobs cannot be cleaned; they are held by workers")
        with self.db.transaction() as conn:
            doomed = conn.execute(
                "SELECT id FROM jobs WHERE queue = ? AND state = ?"
                " AND coalesce(finished_at, created_at) < ? ORDER BY seq LIMIT ?",
                (queue, state.value, before, limit),
            ).fetchall()
            ids = [row[0] for row in doomed]
            _refuse_pending_children(conn, ids)
            for first in range(0, len(ids), 500):
                chunk = ids[first : first + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", chunk)
            return len(ids)

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        await self.db.run(self._heartbeat_sync, worker, ttl_ms)

    def _heartbeat_sync(self, worker: WorkerInfo, ttl_ms: int) -> None:
        with self.db.transaction() as conn:
            now = now_ms()
            conn.execute(
                "INSERT INTO workers (id, info, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET info = excluded.info,"
                " expires_at = excluded.expires_at",
                (worker.id, msgspec.json.encode(worker), now + ttl_ms),
            )
            conn.execute("DELETE FROM workers WHERE expires_at < ?", (now,))

    async def unregister(self, worker_id: str) -> None:
        await self.db.run(self._unregister_sync, worker_id)

    def _unregister_sync(self, worker_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    async def workers(self) -> list[WorkerInfo]:
        return await self.db.run(self._workers_sync)

    def _workers_sync(self) -> list[WorkerInfo]:
        rows = self.db.conn.execute(
            "SELECT info FROM workers WHERE expires_at >= ? ORDER BY id", (now_ms(),)
        ).fetchall()
        return [_WORKER_DECODER.decode(info) for (info,) in rows]


def _refuse_pending_children(conn: sqlite3.Connection, job_ids: list[str]) -> None:
    """A flow child its parent still waits for is not deleted (its parent would wait forever)."""
    for first in range(0, len(job_ids), 500):
        chunk = job_ids[first : first + 500]
        marks = ",".join("?" * len(chunk))
        row = conn.execute(
            f"SELECT child_id FROM flow_children WHERE child_id IN ({marks}) AND state IS NULL"
            " LIMIT 1",
            chunk,
        ).fetchone()
        if row is not None:
            raise ConflictError(f"job {row[0]} is a pending flow child; cancel it first")
