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
from conveyor.stores.postgres.connection import Conn, PostgresConnection
from conveyor.stores.postgres.rows import RECORD_COLUMNS, job_record

_WORKER_DECODER = msgspec.json.Decoder(WorkerInfo)
_WAKE = "SELECT {schema}.wake(ARRAY[$1::text])"
_PENDING_CHILD = (
    "SELECT child_id FROM {schema}.flow_children WHERE child_id = ANY ($1::text[])"
    " AND state IS NULL LIMIT 1"
)


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

    async def list_jobs(
        self, queue: str | None, state: JobState, offset: int, limit: int
    ) -> list[JobRecord]:
        if queue is not None:
            rows = await self.db.fetch(
                f"SELECT {RECORD_COLUMNS} FROM {{schema}}.jobs WHERE queue = $1 AND state = $2"
                " ORDER BY created_at DESC, seq DESC LIMIT $3 OFFSET $4",
                queue,
                state.value,
                limit,
                offset,
            )
        else:  # the newest of each queue (one index range each), merged
            rows = await self.db.fetch(
                f"SELECT {RECORD_COLUMNS} FROM {{schema}}.queues q CROSS JOIN LATERAL"
                f" (SELECT {RECORD_COLUMNS}, seq FROM {{schema}}.jobs j"
                " WHERE j.queue = q.name AND j.state = $1"
                " ORDER BY j.created_at DESC, j.seq DESC LIMIT $2::bigint + $3::bigint) j"
                " ORDER BY j.created_at DESC, j.seq DESC LIMIT $2 OFFSET $3",
                state.value,
                limit,
                offset,
            )
        return [job_record(row) for row in rows]

    async def counts(self) -> dict[str, dict[JobState, int]]:
        async def read(conn: Conn) -> dict[str, dict[JobState, int]]:
            names = await conn.fetch(self.db.sql("SELECT name FROM {schema}.queues"))
            counts = {r["name"]: dict.fromkeys(JobState, 0) for r in names}
            rows = await conn.fetch(
                self.db.sql(
                    "SELECT queue, state, count(*) AS n FROM {schema}.jobs GROUP BY queue, state"
                )
            )
            for r in rows:
                counts.setdefault(r["queue"], dict.fromkeys(JobState, 0))[JobState(r["state"])] = r[
                    "n"
                ]
            return counts

        return await self.db.transaction(read)  # one snapshot for both reads

    async def oldest_waiting(self) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT q.name, (SELECT min(run_at) FROM {schema}.jobs"
            " WHERE queue = q.name AND state = 'waiting') AS at FROM {schema}.queues q"
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
        async def step(conn: Conn) -> bool:
            # A flow parent some of whose children have not reported waits for them again.
            row = await conn.fetchrow(
                self.db.sql(
                    "UPDATE {schema}.jobs j SET state = CASE WHEN EXISTS (SELECT 1"
                    " FROM {schema}.flows WHERE parent_id = j.id AND pending > 0)"
                    " THEN 'waiting-children' ELSE 'waiting' END, attempts = 0, stalls = 0,"
                    " run_at = $1, finished_at = NULL, expires_at = NULL, result = NULL,"
                    " error = NULL WHERE id = $2 AND state IN ('failed', 'cancelled')"
                    " RETURNING queue, state"
                ),
                now,
                job_id,
            )
            if row is not None and row["state"] == "waiting":
                await conn.execute(self.db.sql(_WAKE), row["queue"])
            return row is not None

        return await self.db.transaction(step)

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
                        "SELECT id FROM {schema}.jobs WHERE queue = $1 AND state = $2"
                        " AND coalesce(finished_at, created_at) < $3 ORDER BY seq LIMIT $4"
                        " FOR UPDATE SKIP LOCKED"
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
