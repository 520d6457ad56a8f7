"""The embedded job store: one SQLite file in WAL mode, one transaction per step.

Its steps are grouped by concern: ``claims.py`` (enqueue, finish + claim),
``leases.py`` (renew, release, progress, stalls, expiry), ``job_events.py``,
``admin.py`` (reads, administration, the worker registry) and ``pages.py``
(listings, searches, timelines). Each step
runs on the database's connection thread (``database.on_connection``).
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.notify import Notifier
from conveyor.stores.sqlite.admin import SqliteJobAdmin
from conveyor.stores.sqlite.claims import SqliteClaims
from conveyor.stores.sqlite.database import Database
from conveyor.stores.sqlite.job_events import SqliteJobEvents
from conveyor.stores.sqlite.leases import SqliteLeases
from conveyor.stores.sqlite.pages import SqlitePages


class SqliteJobStore(SqliteClaims, SqliteLeases, SqliteJobEvents, SqliteJobAdmin, SqlitePages):
    """A :class:`~conveyor.stores.base.JobStore` in one SQLite file."""

    def exchanges_in_flight(self, concurrency: int) -> int:
        return 1

    def __init__(self, url: str, db: Database, clock: Clock) -> None:
        self.url = url
        self.db = db
        self.clock = clock
        self.notifier = Notifier()
        self.known_queues = set()
        self.untrimmed = {}
        self.wake_at = None
