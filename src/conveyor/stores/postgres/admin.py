"""Reads and administration of the PostgreSQL job store, and the worker registry.

A step that reads a job and then changes it locks the row first (``FOR
UPDATE``), so a claim cannot take the job in between: a waiting job being
cancelled is skipped by the claims (``SKIP LOCKED``) until the cancel commits.
"""

from __future__ import annotations

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
from conveyor.stores.postgres.connection import Conn, PostgresConnection, Record
from conveyor.stores.postgres.rows import RECORD_COLUMNS, job_record

_WORKER_DECODER = msgspec.json.Decoder(WorkerInfo)
_FOLD_COUNTS = "SELECT {schema}.fold_counts()"
_COUNTS = (
    "SELECT q.name AS queue, c.state, c.n FROM {schema}.queues q LEFT JOIN ("
    " SELECT queue, state, sum(n)::bigint AS n FROM ("
    " SELECT queue, state, n FROM {schema}.job_counts"
    " UNION ALL SELECT queue, state, n FROM {schema}.job_count_moves"
    " ) m GROUP BY queue, state"
    ") c ON c.queue = q.name"
)
# A flow parent some of whose children have not reported waits for them again; a failed
# job leaves the error index.
_RETRY = """
WITH moved AS (
    UPDATE {schema}.jobs j SET state = CASE WHEN EXISTS (SELECT 1 FROM {schema}.flows
            WHERE parent_id = j.id AND pending > 0) THEN 'waiting-children' ELSE 'waiting' END,
        attempts = 0, stalls = 0, run_at = $2, finished_at = NULL, expires_at = NULL,
        result = NULL, error = NULL
    FROM (SELECT id, state AS old FROM {schema}.jobs WHERE id = ANY ($1::text[])
        AND state IN ('failed', 'cancelled') FOR UPDATE) o
    WHERE j.id = o.id
    RETURNING j.id, j.queue, j.state, o.old, j.keyed
), unindexed AS (
    SELECT {schema}.unindex_errors(array_agg(id)) FROM moved WHERE old = 'failed' AND keyed
), woken AS (
    SELECT {schema}.wake(array_agg(DISTINCT queue)) FROM moved WHERE state = 'waiting'
)
SELECT count(*) FROM moved, (SELECT count(*) FROM unindexed) u, (SELECT count(*) FROM woken) w
"""

_WAKE = "SELECT {schema}.wake(ARRAY[$1::text])"
_PENDING_CHILD = (
    "SELECT child_id FROM {schema}.flow_children WHERE child_id = ANY ($1::text[])"
    " AND state IS NULL LIMIT 1"
)


def _cleanable(state: JobState) -> str:
    """What ``clean`` deletes and ``count_clean`` counts ($1 queue, $2 state, $3 before):
    jobs finished before a time (a seek of jobs_finished), or for an unfinished state
    created before it (of jobs_page)."""
    if state.is_finished:
        return "queue = $1 AND state = $2 AND finished_at < $3"
    return "queue = $1 AND state = $2 AND created_at < $3"


class PostgresJobAdmin:
    """Reads and administration of :class:`~conveyor.stores.postgres.jobs.PostgresJobStore`."""

    db: PostgresConnection
    clock: Clock
    notifier: Notifier

    async def get(self, job_id: str) -> JobRecord | None:
        row = await self.db.fetchrow(
            f"SELECT {RECORD_COLUMNS} FROM {{schema}}.jobs WHERE id = $1", job_id
        )
        return None if row is None else job_record(row)

    async def logs(self, job_id: str) -> list[LogLine]:
        rows = await self.db.fetch(
            "SELECT at, line FROM {schema}.job_logs WHERE job_id = $1 ORDER BY n", job_id
        )
        return [LogLine(r["at"], r["line"]) for r in rows]

    async def counts(self) -> dict[str, dict[JobState, int]]:
        """``job_counts`` plus the moves not folded into it yet (``counts.sql``): a row per
        queue and state, never the jobs. Folding first keeps the moves few."""

        async def read(conn: Conn) -> list[Record]:
            await conn.execute(self.db.sql(_FOLD_COUNTS))
            return await conn.fetch(self.db.sql(_COUNTS))

        rows = await self.db.transaction(read)
        counts: dict[str, dict[JobState, int]] = {}
        for r in rows:
            by_state = counts.setdefault(r["queue"], dict.fromkeys(JobState, 0))
            if r["state"] is not None:
                by_state[JobState(r["state"])] = r["n"]
        return counts

    async def oldest_waiting(self) -> dict[str, int]:
        """Per queue, the run_at of its earliest-created waiting job: one seek per queue."""
        rows = await self.db.fetch(
            "SELECT q.name, (SELECT run_at FROM {schema}.jobs WHERE queue = q.name"
            " AND state = 'waiting' ORDER BY created_at, id LIMIT 1) AS at FROM {schema}.queues q"
        )
        return {r["name"]: r["at"] for r in rows if r["at"] is not None}

    async def queues(self) -> list[QueueInfo]:
        rows = await self.db.fetch("SELECT name, paused FROM {schema}.queues ORDER BY name")
        return [QueueInfo(r["name"], r["paused"]) for r in rows]

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.db.execute(
            "INSERT INTO {schema}.queues (name, paused) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
            queue,
            paused,
        )
        if not paused:
            await self.db.execute(_WAKE, queue)

    async def retry(self, job_id: str, now: int) -> bool:
        moved = await self.db.fetchval(_RETRY, [job_id], now)
        return bool(moved)

    async def retry_failed(self, queue: str, limit: int, now: int) -> int:
        # The longest-failed first: a seek of jobs_finished.
        ids = (
            "SELECT array_agg(id) FROM (SELECT id FROM {schema}.jobs WHERE queue = $1"
            " AND state = 'failed' AND finished_at IS NOT NULL ORDER BY finished_at, seq"
            " LIMIT $2) f"
        )

        async def step(conn: Conn) -> int:
            found = await conn.fetchval(self.db.sql(ids), queue, limit)
            if not found:
                return 0
            moved: int = await conn.fetchval(self.db.sql(_RETRY), found, now)
            return moved

        return await self.db.transaction(step)

    async def promote(self, job_id: str, now: int) -> bool:
        moved = await self.db.fetchval(
            "WITH p AS (UPDATE {schema}.jobs SET state = 'waiting', run_at = $1"
            " WHERE id = $2 AND state = 'scheduled' RETURNING queue)"
            " SELECT count(*) FROM p CROSS JOIN LATERAL (SELECT {schema}.wake(ARRAY[p.queue])) w",
            now,
            job_id,
        )
        if moved:
            self.notifier.notify()
        return bool(moved)

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        async def step(conn: Conn) -> CancelResult:
            row = await conn.fetchrow(
                self.db.sql("SELECT state, queue FROM {schema}.jobs WHERE id = $1 FOR UPDATE"),
                job_id,
            )
            if row is None:
                return CancelResult.MISSING
            state = JobState(row["state"])
            if state.is_finished:
                return CancelResult.FINISHED
            if state is JobState.ACTIVE:
                await conn.execute(
                    self.db.sql("UPDATE {schema}.jobs SET cancel_requested = true WHERE id = $1"),
                    job_id,
                )
                return CancelResult.REQUESTED
            await conn.execute(
                self.db.sql(
                    "UPDATE {schema}.jobs SET state = 'cancelled', finished_at = $2,"
                    " expires_at = $3 WHERE id = $1"
                ),
                job_id,
                now,
                now + keep_ms,
            )
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.job_events (queue, job_id, kind, at)"
                    " VALUES ($1, $2, 'cancelled', $3)"
                ),
                row["queue"],
                job_id,
                now,
            )
            await conn.execute(
                self.db.sql("SELECT {schema}.report_finished(ARRAY[$1::text], $2)"), job_id, now
            )
            return CancelResult.CANCELLED

        result = await self.db.transaction(step)
        if result is CancelResult.CANCELLED:
            self.notifier.notify()
        return result

    async def remove(self, job_id: str) -> RemoveResult:
        async def step(conn: Conn) -> RemoveResult:
            row = await conn.fetchrow(
                self.db.sql("SELECT state FROM {schema}.jobs WHERE id = $1 FOR UPDATE"), job_id
            )
            if row is None:
                return RemoveResult.MISSING
            if row["state"] == JobState.ACTIVE:
                return RemoveResult.ACTIVE
            if await conn.fetchval(self.db.sql(_PENDING_CHILD), [job_id]) is not None:
                return RemoveResult.PENDING_CHILD
            await conn.execute(self.db.sql("DELETE FROM {schema}.jobs WHERE id = $1"), job_id)
            return RemoveResult.REMOVED

        return await self.db.transaction(step)

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> Cleaned:
        async def step(conn: Conn) -> Cleaned:
            ids = [
                r["id"]
                for r in await conn.fetch(
                    self.db.sql(
                        f"SELECT id FROM {{schema}}.jobs WHERE {_cleanable(state)}"
                        " ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED"
                    ),
                    queue,
                    state.value,
                    before,
                    limit,
                )
            ]
            child = await conn.fetchval(self.db.sql(_PENDING_CHILD), ids)
            if child is not None:
                return Cleaned(0, child)
            await conn.execute(
                self.db.sql("DELETE FROM {schema}.jobs WHERE id = ANY ($1::text[])"), ids
            )
            return Cleaned(len(ids))

        return await self.db.transaction(step)

    async def count_clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        count = await self.db.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM {{schema}}.jobs WHERE {_cleanable(state)}"
            " LIMIT $4) c",
            queue,
            state.value,
            before,
            limit,
        )
        return int(count)

    # -- the worker registry ---------------------------------------------------

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        now = self.clock.now_ms()

        async def step(conn: Conn) -> None:
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.workers (id, info, expires_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (id) DO UPDATE SET info = excluded.info,"
                    " expires_at = excluded.expires_at"
                ),
                worker.id,
                msgspec.json.encode(worker),
                now + ttl_ms,
            )
            await conn.execute(
                self.db.sql("DELETE FROM {schema}.workers WHERE expires_at < $1"), now
            )

        await self.db.transaction(step)

    async def unregister(self, worker_id: str) -> None:
        await self.db.execute("DELETE FROM {schema}.workers WHERE id = $1", worker_id)

    async def workers(self) -> list[WorkerInfo]:
        rows = await self.db.fetch(
            "SELECT info FROM {schema}.workers WHERE expires_at >= $1 ORDER BY id",
            self.clock.now_ms(),
        )
        return [_WORKER_DECODER.decode(r["info"]) for r in rows]
