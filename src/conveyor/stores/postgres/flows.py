"""Flows in the PostgreSQL store: one transaction adds a whole flow.

Children report to their parents inside the transaction that finishes them
(``{schema}.report_finished``, called by every finishing function), so there
is nothing to deliver or repair afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncpg import exceptions as pg_errors

from conveyor.clock import Clock
from conveyor.stores.base import JobState
from conveyor.stores.flows import AddedFlow, ChildRecord, FlowJob
from conveyor.stores.postgres.connection import Conn, PostgresConnection
from conveyor.stores.postgres.rows import insert_jobs


class PostgresFlowStore:
    """A :class:`~conveyor.stores.flows.FlowStore` in the PostgreSQL schema."""

    def __init__(self, db: PostgresConnection, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def add_flow(self, jobs: Sequence[FlowJob]) -> AddedFlow:
        async def step(conn: Conn) -> AddedFlow:
            exists = await conn.fetchval(
                self.db.sql("SELECT 1 FROM {schema}.jobs WHERE id = $1"), jobs[0].job.id
            )
            if exists:
                return AddedFlow(created=False)
            transaction = conn.transaction()
            await transaction.start()
            try:
                taken = await self._add(conn, jobs)
            except BaseException:
                await transaction.rollback()
                raise
            if taken is not None:
                await transaction.rollback()  # the whole flow: nothing of it is kept
                return AddedFlow(created=False, taken=taken)
            await transaction.commit()
            return AddedFlow(created=True)

        return await self.db.run(step)

    async def _add(self, conn: Conn, jobs: Sequence[FlowJob]) -> str | None:
        """Insert the flow's jobs and links; the id of a job or child already taken, if one
        is (the caller then rolls everything back)."""
        created = await insert_jobs(conn, self.db, [n.job for n in jobs], self.clock.now_ms())
        for node, ok in zip(jobs, created, strict=True):
            if not ok:
                return node.job.id
        for node in jobs:
            if node.children:
                taken = await self._add_parent(conn, node)
                if taken is not None:
                    return taken
        return None

    async def _add_parent(self, conn: Conn, node: FlowJob) -> str | None:
        parent_id = node.job.id
        await conn.execute(
            self.db.sql("UPDATE {schema}.jobs SET state = 'waiting-children' WHERE id = $1"),
            parent_id,
        )
        await conn.execute(
            self.db.sql(
                "INSERT INTO {schema}.flows (parent_id, policy, pending, keep_ms)"
                " VALUES ($1, $2, $3, $4)"
            ),
            parent_id,
            node.policy,
            len(node.children),
            node.keep_failed_ms,
        )
        child_ids = [cid for _, cid in node.children]
        taken: str | None = await conn.fetchval(
            self.db.sql(
                "SELECT child_id FROM {schema}.flow_children WHERE child_id = ANY ($1::text[])"
                " LIMIT 1"
            ),
            child_ids,
        )
        if taken is not None:  # a child of another flow (the job itself was removed)
            return taken
        try:
            await conn.execute(
                self.db.sql(
                    "INSERT INTO {schema}.flow_children (child_id, parent_id, position, queue)"
                    " SELECT c.id, $2, c.ord - 1, c.queue"
                    " FROM unnest($1::text[], $3::text[]) WITH ORDINALITY AS c (id, queue, ord)"
                ),
                child_ids,
                parent_id,
                [queue for queue, _ in node.children],
            )
        except pg_errors.UniqueViolationError:  # added by a concurrent flow meanwhile
            return parent_id
        return None

    async def children(self, queue: str, parent_id: str) -> list[ChildRecord] | None:
        async def read(conn: Conn) -> list[ChildRecord] | None:
            found = await conn.fetchval(
                self.db.sql("SELECT 1 FROM {schema}.flows WHERE parent_id = $1"), parent_id
            )
            if not found:
                return None
            rows = await conn.fetch(
                self.db.sql(
                    "SELECT child_id, queue, state, value FROM {schema}.flow_children"
                    " WHERE parent_id = $1 ORDER BY position"
                ),
                parent_id,
            )
            return [
                ChildRecord(
                    r["child_id"],
                    r["queue"],
                    None if r["state"] is None else JobState(r["state"]),
                    r["value"],
                )
                for r in rows
            ]

        return await self.db.transaction(read)

    async def deliver(self, children: Sequence[tuple[str, str]]) -> int:
        return 0  # reported in the transaction that finished them

    async def repair(self, now: int) -> int:
        return 0
