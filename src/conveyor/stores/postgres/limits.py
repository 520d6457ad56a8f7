"""Queue limits in the PostgreSQL store: the limits store (claims apply them in SQL).

Claims read and lock a queue's ``queue_limits`` row inside the claim
(``sql/functions/claim.sql``: ``claim_gate``). A queue with only task limits
still gets a row, so there is always one to lock.
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.limits import QueueLimits
from conveyor.stores.postgres.connection import Conn, PostgresConnection
from conveyor.stores.postgres.migrations import ensure_index

_TASK_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_ready_task ON {schema}.jobs"
    " (queue, task, priority DESC, run_at, seq) WHERE state = 'waiting'"
)
_ENSURE_ROW = "INSERT INTO {schema}.queue_limits (queue) VALUES ($1) ON CONFLICT (queue) DO NOTHING"


class PostgresLimitsStore:
    """A :class:`~conveyor.stores.limits.LimitsStore` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def set_limits(
        self, queue: str, concurrency: int | None, rate: int | None, period_ms: int
    ) -> None:
        await self.db.execute(
            "INSERT INTO {schema}.queue_limits (queue, concurrency, rate, period_ms)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (queue) DO UPDATE SET"
            " concurrency = excluded.concurrency, rate = excluded.rate,"
            " period_ms = excluded.period_ms",
            queue,
            concurrency,
            rate,
            period_ms,
        )

    async def set_task_concurrency(self, queue: str, task: str, limit: int | None) -> None:
        async def step(conn: Conn) -> None:
            if limit is None:
                await conn.execute(
                    self.db.sql("DELETE FROM {schema}.task_limits WHERE queue = $1 AND task = $2"),
                    queue,
                    task,
                )
                return
            # Only stores that use task limits pay for this index.
            await ensure_index(conn, self.db, _TASK_INDEX)
            await conn.execute(self.db.sql(_ENSURE_ROW), queue)
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.task_limits (queue, task, concurrency)"
                    " VALUES ($1, $2, $3) ON CONFLICT (queue, task) DO UPDATE"
                    " SET concurrency = excluded.concurrency"
                ),
                queue,
                task,
                limit,
            )

        await self.db.transaction(step)

    async def get_limits(self, queue: str) -> QueueLimits:
        async def read(conn: Conn) -> QueueLimits:
            row = await conn.fetchrow(
                self.db.sql(
                    "SELECT concurrency, rate, period_ms, backoff_until"
                    " FROM {schema}.queue_limits WHERE queue = $1"
                ),
                queue,
            )
            tasks = await conn.fetch(
                self.db.sql("SELECT task, concurrency FROM {schema}.task_limits WHERE queue = $1"),
                queue,
            )
            if row is None:
                return QueueLimits(tasks={t["task"]: t["concurrency"] for t in tasks})
            return QueueLimits(
                row["concurrency"],
                row["rate"],
                row["period_ms"],
                {t["task"]: t["concurrency"] for t in tasks},
                row["backoff_until"],
            )

        return await self.db.transaction(read)

    async def backoff(
        self, queue: str, until: int, leases: list[tuple[str, str]], keep_ms: int
    ) -> int:
        async def step(conn: Conn) -> int:
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.queue_limits AS l (queue, backoff_until)"
                    " VALUES ($1, $2) ON CONFLICT (queue) DO UPDATE"
                    " SET backoff_until = greatest(l.backoff_until, excluded.backoff_until)"
                ),
                queue,
                until,
            )
            released: int = await conn.fetchval(
                self.db.sql("SELECT {schema}.release($1::text[], $2::text[], $3, $4)"),
                [job_id for job_id, _ in leases],
                [token for _, token in leases],
                self.clock.now_ms(),
                keep_ms,
            )
            return released

        return await self.db.transaction(step)
