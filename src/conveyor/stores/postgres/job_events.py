"""Reading the job events of the PostgreSQL store (written by each step in its transaction).

A cursor is ``<xid>:<seq>``: the transaction that wrote the last event read, and
that event's sequence number. Sequence numbers are drawn when a row is inserted
but become visible when its transaction commits, so two writers can commit them
out of order; reading "seq > cursor" could then skip a row that commits later
under a smaller seq. A reader therefore only reads rows of transactions older
than every transaction still running (``pg_snapshot_xmin``), in (xid, seq)
order: none of those can still appear below the cursor. The cost is that an
event waits for every older write transaction to end; conveyor's own are short
(a long-running write transaction of the application's, in the same cluster,
delays events until it ends).
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.base import JobEvent, JobEventKind
from conveyor.stores.notify import Notifier, read_when_ready
from conveyor.stores.postgres.connection import PostgresConnection

EVENT_POLL_SECONDS = 0.05
"""How often a reader looks for events written by other processes (this one's wake it)."""

_START = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
_READ = (
    "SELECT xid::text AS xid, seq, queue, job_id, kind, at, data FROM {schema}.job_events"
    " WHERE (xid, seq) > ($1::text::xid8, $2::bigint)"
    " AND xid < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY xid, seq LIMIT $3"
)


class PostgresJobEvents:
    """The job-event reads of :class:`~conveyor.stores.postgres.jobs.PostgresJobStore`."""

    db: PostgresConnection
    notifier: Notifier

    async def events_start(self) -> str:
        # Rows of transactions still running now may commit after this: they are next.
        xmin: str = await self.db.fetchval(_START)
        return f"{xmin}:0"

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        async def read() -> tuple[str, list[JobEvent]]:
            return await self._read_events(cursor, queues, limit)

        return await read_when_ready(read, self.notifier, block, EVENT_POLL_SECONDS)

    async def _read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int
    ) -> tuple[str, list[JobEvent]]:
        xid, _, seq = cursor.partition(":")
        rows = await self.db.fetch(_READ, xid, int(seq or 0), limit)
        wanted = None if queues is None else set(queues)
        events = [
            JobEvent(JobEventKind(r["kind"]), r["job_id"], r["queue"], r["at"], r["data"])
            for r in rows
            if wanted is None or r["queue"] in wanted
        ]
        if rows:
            cursor = f"{rows[-1]['xid']}:{rows[-1]['seq']}"
        return cursor, events
