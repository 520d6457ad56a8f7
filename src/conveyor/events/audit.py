"""The built-in audit handler: every event of chosen types, one row each, in a SQL table.

>>> audit = app.events.audit(OrderCreated, OrderPaid, database=engine)
>>> with engine.begin() as conn:
...     audit.create_table(conn)

Rows are keyed by ``event_id`` and inserted with ``ON CONFLICT DO
NOTHING``, so a redelivered event is recorded once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from conveyor.events.envelope import EventMeta, to_data
from conveyor.events.outbox import check_table, close, connect, end
from conveyor.events.sql import Sql

DDL = (
    "CREATE TABLE IF NOT EXISTS {t} (event_id TEXT PRIMARY KEY, type TEXT NOT NULL,"
    " version INTEGER NOT NULL, source TEXT NOT NULL, occurred_at TEXT NOT NULL,"
    " trace_id TEXT, request_id TEXT, data TEXT NOT NULL, recorded_at TEXT NOT NULL)"
)


class AuditLog:
    """Records events into ``table`` of ``database`` (an Engine or a connect function)."""

    def __init__(self, database: Any, table: str = "conveyor_audit") -> None:
        self.database = database
        self.table = check_table(table)

    def create_table(self, conn: Any) -> None:
        Sql(conn).execute(DDL.format(t=self.table))

    def record(self, event: object, meta: EventMeta) -> None:
        """The handler (sync: the worker runs it in a thread)."""
        conn = connect(self.database)
        try:
            Sql(conn).execute(
                f"INSERT INTO {self.table} (event_id, type, version, source, occurred_at,"
                " trace_id, request_id, data, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (event_id) DO NOTHING",
                (
                    meta.event_id,
                    meta.type,
                    meta.version,
                    meta.source,
                    meta.occurred_at.isoformat(),
                    meta.trace_id,
                    meta.request_id,
                    msgspec.json.encode(to_data(event)).decode(),
                    datetime.now(UTC).isoformat(),
                ),
            )
            end(conn)
        finally:
            close(conn)
