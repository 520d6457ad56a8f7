"""The audit log in PostgreSQL: one row per entry, trimmed in the statement that appends."""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.audit import AuditEntry, AuditPage
from conveyor.stores.postgres.connection import Conn, PostgresConnection

_APPEND = (
    "INSERT INTO {schema}.audit (at, actor, action, target, counts, request_id)"
    " VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq"
)
_TRIM = "DELETE FROM {schema}.audit WHERE seq <= $1 OR at < $2"
_PAGE = (
    "SELECT seq, at, actor, action, target, counts, request_id FROM {schema}.audit"
    " WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
)


class PostgresAuditStore:
    """An :class:`~conveyor.stores.audit.AuditStore` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def append(self, entry: AuditEntry, keep: int, keep_ms: int) -> str:
        e = entry

        async def step(conn: Conn) -> int:
            seq: int = await conn.fetchval(
                self.db.sql(_APPEND), e.at, e.actor, e.action, e.target, e.counts, e.request_id
            )
            await conn.execute(self.db.sql(_TRIM), seq - keep, self.clock.now_ms() - keep_ms)
            return seq

        return str(await self.db.transaction(step))

    async def page(self, cursor: str | None, limit: int) -> AuditPage:
        rows = await self.db.fetch(_PAGE, 2**63 - 1 if cursor is None else int(cursor), limit + 1)
        entries = [
            AuditEntry(
                r["at"],
                r["actor"],
                r["action"],
                r["target"],
                r["counts"],
                r["request_id"],
                str(r["seq"]),
            )
            for r in rows[:limit]
        ]
        return AuditPage(entries, entries[-1].id if len(rows) > limit else None)
