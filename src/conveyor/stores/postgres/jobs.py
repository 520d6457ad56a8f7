"""The PostgreSQL job store: every transition one statement or one transaction.

Its steps are grouped by concern: ``claims.py`` (enqueue, finish + claim, the
idle wait), ``leases.py`` (renew, release, progress, stalls, expiry),
``job_events.py``, ``admin.py`` (reads, administration, the worker
registry) and ``pages.py`` (listings, searches, timelines). The transitions
themselves are PL/pgSQL functions (``sql/functions/``), so the worker's round
trip is one call.
"""

from __future__ import annotations

import asyncio

from conveyor.clock import Clock
from conveyor.stores.notify import Notifier
from conveyor.stores.postgres.admin import PostgresJobAdmin
from conveyor.stores.postgres.claims import PostgresClaims, WorkSignal
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.job_events import PostgresJobEvents
from conveyor.stores.postgres.leases import PostgresLeases
from conveyor.stores.postgres.listener import Listener
from conveyor.stores.postgres.pages import PostgresPages

OVERLAP_FROM = 24
"""The least concurrency at which a worker keeps two exchanges in flight. An exchange
costs the server about 0.5 ms whatever it carries, so each half of the free slots must
hold enough jobs: drain with two against one (20,000 no-op jobs, fsync on, two pairs
each): concurrency 10, 8,250 -> 6,670 jobs/s; 20, 9,180 -> 9,330; 30, 10,700 ->
12,240; 50, 12,970 -> 14,550; 100, 13,010 -> 17,650."""


class PostgresJobStore(
    PostgresClaims, PostgresLeases, PostgresJobEvents, PostgresJobAdmin, PostgresPages
):
    """A :class:`~conveyor.stores.base.JobStore` in a PostgreSQL schema."""

    def exchanges_in_flight(self, concurrency: int) -> int:
        return 2 if concurrency >= OVERLAP_FROM else 1

    def __init__(self, url: str, db: PostgresConnection, clock: Clock) -> None:
        self.url = url
        self.db = db
        self.clock = clock
        self.notifier = Notifier()
        self.progress_order = asyncio.Lock()
        self.work = WorkSignal()
        self.listener = Listener(
            db, f"{db.channel}_work", self.work.notify, on_connect=self.work.notify_all
        )
        self.untrimmed = {}
        self.seen_work = {}
        self.next_due = None

    async def close(self) -> None:
        """Stop listening for work (the backend closes the pool)."""
        await self.listener.stop()
