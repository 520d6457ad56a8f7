"""Debounce and throttle keys in the PostgreSQL store: one transaction per batch.

Each key is locked for the transaction (an advisory lock on its hash, taken in
one order), so two producers using one key at once take turns: the second sees
the job the first let in, as on the stores that serialize every write.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.base import NewJob
from conveyor.stores.dedupe import Dedupe
from conveyor.stores.postgres.connection import Conn, PostgresConnection
from conveyor.stores.postgres.migrations import LOCK_CLASS
from conveyor.stores.postgres.rows import insert_jobs
from conveyor.stores.search import job_field_keys, joined_keys

_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock($1, k) FROM (SELECT DISTINCT hashtext(q || chr(31) || key) AS k"
    " FROM unnest($2::text[], $3::text[]) AS d (q, key) ORDER BY 1) keys"
)
_REPLACE_PENDING = (
    "UPDATE {schema}.jobs SET payload = $2, options = $3, priority = $4, run_at = $5,"
    " state = CASE WHEN $5::bigint <= $6::bigint THEN 'waiting' ELSE 'scheduled' END"
    " WHERE id = $1 AND state IN ('scheduled', 'waiting')"
)
_UNINDEX_FIELDS = "DELETE FROM {schema}.job_keys WHERE job_id = $1 AND key LIKE 'f:%'"
_INDEX_KEYS = "SELECT {schema}.index_keys($1::text[], $2::text[])"
_POINT = (
    "INSERT INTO {schema}.dedupe_keys (queue, key, job_id, expires_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (queue, key) DO UPDATE SET job_id = excluded.job_id,"
    " expires_at = excluded.expires_at"
)


class PostgresDedupeStore:
    """A :class:`~conveyor.stores.dedupe.DedupeStore` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def enqueue_deduped(
        self, jobs: Sequence[tuple[NewJob, Dedupe]]
    ) -> list[tuple[str, bool]]:
        async def step(conn: Conn) -> list[tuple[str, bool]]:
            now = self.clock.now_ms()
            await conn.execute(
                _LOCK_KEYS, LOCK_CLASS, [new.queue for new, _ in jobs], [d.key for _, d in jobs]
            )
            await conn.execute(
                self.db.sql("DELETE FROM {schema}.dedupe_keys WHERE expires_at <= $1"), now
            )
            return [await self._one(conn, new, dedupe, now) for new, dedupe in jobs]

        return await self.db.transaction(step)

    async def _one(self, conn: Conn, new: NewJob, dedupe: Dedupe, now: int) -> tuple[str, bool]:
        held = await conn.fetchval(
            self.db.sql("SELECT job_id FROM {schema}.dedupe_keys WHERE queue = $1 AND key = $2"),
            new.queue,
            dedupe.key,
        )
        if held is not None:
            if dedupe.mode == "throttle":
                exists = await conn.fetchval(
                    self.db.sql("SELECT 1 FROM {schema}.jobs WHERE id = $1"), held
                )
                if exists:
                    return held, False
            elif await self._replace_pending(conn, held, new, now):
                await self._point(conn, new.queue, dedupe, held)
                return held, False
        (inserted,) = await insert_jobs(conn, self.db, [new], now)
        await self._point(conn, new.queue, dedupe, new.id)
        return new.id, inserted

    async def _replace_pending(self, conn: Conn, job_id: str, new: NewJob, now: int) -> bool:
        status = await conn.execute(
            self.db.sql(_REPLACE_PENDING),
            job_id,
            new.payload,
            new.options,
            new.priority,
            new.run_at,
            now,
        )
        if status != "UPDATE 1":
            return False
        # The job's searchable fields are the latest call's.
        await conn.execute(self.db.sql(_UNINDEX_FIELDS), job_id)
        await conn.execute(
            self.db.sql(_INDEX_KEYS), [job_id], [joined_keys(job_field_keys(new.search_keys))]
        )
        return True

    async def _point(self, conn: Conn, queue: str, dedupe: Dedupe, job_id: str) -> None:
        await conn.execute(self.db.sql(_POINT), queue, dedupe.key, job_id, dedupe.until)
