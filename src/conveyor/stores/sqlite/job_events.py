"""Reading the job events of the SQLite file (written by each step in its transaction)."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.base import JobEvent, JobEventKind
from conveyor.stores.notify import Notifier, read_when_ready
from conveyor.stores.sqlite.database import Database, on_connection

_EVENT_POLL_SECONDS = 0.05
"""How often a reader looks for events written by other processes (this one's wake it)."""


class SqliteJobEvents:
    """The job-event reads of :class:`~conveyor.stores.sqlite.jobs.SqliteJobStore`."""

    db: Database
    notifier: Notifier

    @on_connection
    def events_start(self) -> str:
        (last,) = self.db.conn.execute("SELECT coalesce(max(seq), 0) FROM job_events").fetchone()
        return str(last)

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        async def read() -> tuple[str, list[JobEvent]]:
            return await self._read_events(int(cursor), queues, limit)

        return await read_when_ready(read, self.notifier, block, _EVENT_POLL_SECONDS)

    @on_connection
    def _read_events(
        self, after: int, queues: Sequence[str] | None, limit: int
    ) -> tuple[str, list[JobEvent]]:
        rows = self.db.conn.execute(
            "SELECT seq, queue, job_id, kind, at, data FROM job_events WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        wanted = None if queues is None else set(queues)
        events = [
            JobEvent(JobEventKind(kind), job_id, queue, at, data)
            for _, queue, job_id, kind, at, data in rows
            if wanted is None or queue in wanted
        ]
        return str(rows[-1][0] if rows else after), events
