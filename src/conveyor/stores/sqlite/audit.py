"""The audit log in the SQLite file: one row per entry, trimmed as entries are appended."""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.audit import AuditEntry, AuditPage
from conveyor.stores.sqlite.database import Database, on_connection


class SqliteAuditStore:
    """An :class:`~conveyor.stores.audit.AuditStore` in the SQLite file."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @on_connection
    def append(self, entry: AuditEntry, keep: int, keep_ms: int) -> str:
        e = entry
        with self.db.transaction() as conn:
            (seq,) = conn.execute(
                "INSERT INTO audit (at, actor, action, target, counts, request_id)"
                " VALUES (?,?,?,?,?,?) RETURNING seq",
                (e.at, e.actor, e.action, e.target, e.counts, e.request_id),
            ).fetchone()
            conn.execute(
                "DELETE FROM audit WHERE seq <= ? OR at < ?",
                (seq - keep, self.clock.now_ms() - keep_ms),
            )
        return str(seq)

    @on_connection
    def page(self, cursor: str | None, limit: int) -> AuditPage:
        rows = self.db.conn.execute(
            "SELECT seq, at, actor, action, target, counts, request_id FROM audit"
            " WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            (2**63 - 1 if cursor is None else int(cursor), limit + 1),
        ).fetchall()
        entries = [
            AuditEntry(at, actor, action, target, counts, request, str(seq))
            for seq, at, actor, action, target, counts, request in rows[:limit]
        ]
        return AuditPage(entries, entries[-1].id if len(rows) > limit else None)
