"""The event bus's store in the PostgreSQL schema: subscriber groups and processed ids."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.postgres.connection import Conn, PostgresConnection

TRIM_EVERY = 256
"""Expired processed ids are deleted once per this many marks (per process)."""


class PostgresEventStore:
    """A :class:`~conveyor.stores.events.EventStore` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection) -> None:
        self.db = db
        self._marks = 0

    async def save_group(self, group: str, spec: bytes, now: int) -> None:
        await self.db.execute(
            "INSERT INTO {schema}.event_groups (grp, spec, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (grp) DO UPDATE SET spec = excluded.spec,"
            " updated_at = excluded.updated_at",
            group,
            spec,
            now,
        )

    async def groups(self) -> dict[str, bytes]:
        rows = await self.db.fetch("SELECT grp, spec FROM {schema}.event_groups ORDER BY grp")
        return {r["grp"]: r["spec"] for r in rows}

    async def drop_group(self, group: str) -> bool:
        status = await self.db.execute("DELETE FROM {schema}.event_groups WHERE grp = $1", group)
        return status != "DELETE 0"

    async def processed(self, group: str, event_ids: Sequence[str], now: int) -> set[str]:
        rows = await self.db.fetch(
            "SELECT event_id FROM {schema}.event_processed WHERE grp = $1 AND expires_at > $2"
            " AND event_id = ANY ($3::text[])",
            group,
            now,
            list(event_ids),
        )
        return {r["event_id"] for r in rows}

    async def mark_processed(
        self, group: str, event_ids: Sequence[str], expires_at: int, now: int
    ) -> None:
        self._marks += 1
        trim = self._marks % TRIM_EVERY == 0

        async def step(conn: Conn) -> None:
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.event_processed (grp, event_id, expires_at)"
                    " SELECT $1, e, $3 FROM unnest($2::text[]) AS e"
                    " ON CONFLICT (grp, event_id) DO UPDATE SET expires_at = excluded.expires_at"
                ),
                group,
                list(dict.fromkeys(event_ids)),
                expires_at,
            )
            if trim:
                await conn.execute(
                    self.db.sql("DELETE FROM {schema}.event_processed WHERE expires_at <= $1"),
                    now,
                )

        await self.db.transaction(step)
