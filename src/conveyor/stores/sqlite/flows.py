"""Flows in the SQLite file: one transaction adds a whole flow.

Children report to their parents through the ``flow_child_finished``
trigger (``schema.sql``), inside the transaction that finishes them, so
there is nothing to deliver or repair afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.base import JobState, released_state
from conveyor.stores.flows import AddedFlow, ChildRecord, FlowJob
from conveyor.stores.sqlite.counts import Counts
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.rows import CHUNK, ensure_queues, insert_job


def _taken(conn: sqlite3.Connection, job_ids: list[str]) -> str | None:
    """One of ``job_ids`` that exists already, or is a child of another flow
    (whose job was removed since)."""
    for first in range(0, len(job_ids), CHUNK):
        chunk = job_ids[first : first + CHUNK]
        marks = ",".join("?" * len(chunk))
        row = conn.execute(
            f"SELECT id FROM jobs WHERE id IN ({marks})"
            f" UNION ALL SELECT child_id FROM flow_children WHERE child_id IN ({marks}) LIMIT 1",
            chunk + chunk,
        ).fetchone()
        if row is not None:
            return str(row[0])
    return None


class SqliteFlowStore:
    """A :class:`~conveyor.stores.flows.FlowStore` in the SQLite file."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @on_connection
    def add_flow(self, jobs: Sequence[FlowJob]) -> AddedFlow:
        with self.db.transaction() as conn:  # the write lock: nothing changes between the looks
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (jobs[0].job.id,)).fetchone():
                return AddedFlow(created=False)
            taken = _taken(conn, [node.job.id for node in jobs])
            if taken is not None:
                return AddedFlow(created=False, taken=taken)
            now = self.clock.now_ms()
            ensure_queues(conn, {node.job.queue for node in jobs})
            counts = Counts()
            for node in jobs:
                insert_job(conn, node.job, now, counts)
                if node.children:
                    self._add_parent(conn, node)
                    state = released_state(node.job.run_at, now).value
                    counts.move(node.job.queue, state, "waiting-children")
            counts.apply(conn)
        return AddedFlow(created=True)

    def _add_parent(self, conn: sqlite3.Connection, node: FlowJob) -> None:
        parent_id = node.job.id
        conn.execute("UPDATE jobs SET state = 'waiting-children' WHERE id = ?", (parent_id,))
        conn.execute(
            "INSERT INTO flows (parent_id, policy, pending, keep_ms) VALUES (?,?,?,?)",
            (parent_id, node.policy, len(node.children), node.keep_failed_ms),
        )
        conn.executemany(
            "INSERT INTO flow_children (child_id, parent_id, position, queue) VALUES (?,?,?,?)",
            [(cid, parent_id, i, queue) for i, (queue, cid) in enumerate(node.children)],
        )

    @on_connection
    def children(self, queue: str, parent_id: str) -> list[ChildRecord] | None:
        conn = self.db.conn
        if not conn.execute("SELECT 1 FROM flows WHERE parent_id = ?", (parent_id,)).fetchone():
            return None
        rows = conn.execute(
            "SELECT child_id, queue, state, value FROM flow_children"
            " WHERE parent_id = ? ORDER BY position",
            (parent_id,),
        ).fetchall()
        return [
            ChildRecord(cid, queue, None if state is None else JobState(state), value)
            for cid, queue, state, value in rows
        ]

    async def deliver(self, children: Sequence[tuple[str, str]]) -> int:
        return 0  # the trigger reported them in the transaction that finished them

    async def repair(self, now: int) -> int:
        return 0
