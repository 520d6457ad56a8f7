"""The SQLite backend: every store in one file, on one connection thread.

The cache's shared tier and the rate limits live in sibling files
(``<name>.cache.db``, ``<name>.ratelimit.db``), each with a connection of its
own, so neither queues behind job steps.
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.masking import mask_url
from conveyor.stores.backend import BackendSettings
from conveyor.stores.cache import SharedTier, TierOptions
from conveyor.stores.sqlite.audit import SqliteAuditStore
from conveyor.stores.sqlite.database import Database, path_from_url
from conveyor.stores.sqlite.dedupe import SqliteDedupeStore
from conveyor.stores.sqlite.events import SqliteEventStore
from conveyor.stores.sqlite.flows import SqliteFlowStore
from conveyor.stores.sqlite.history import SqliteHistory
from conveyor.stores.sqlite.jobs import SqliteJobStore
from conveyor.stores.sqlite.limits import SqliteLimitsStore
from conveyor.stores.sqlite.ratelimit import SqliteRateLimitStore
from conveyor.stores.sqlite.schedules import SqliteScheduleStore


class SqliteBackend:
    """A :class:`~conveyor.stores.backend.Backend` on one SQLite file."""

    def __init__(self, url: str, settings: BackendSettings, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self._settings = settings
        self.db = Database(
            path_from_url(url),
            synchronous=settings.sqlite_synchronous,
            busy_timeout_s=settings.store_timeout,
        )
        self.jobs = SqliteJobStore(url, self.db, clock)
        self.flows = SqliteFlowStore(self.db, clock)
        self.schedules = SqliteScheduleStore(self.db, clock)
        self.limits = SqliteLimitsStore(self.db, clock)
        self.rate_limits = SqliteRateLimitStore(
            url,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_s=settings.store_timeout,
            clock=clock,
            budget=settings.rate_limit_budget,
        )
        self.dedupe = SqliteDedupeStore(self.db, clock)
        self.events = SqliteEventStore(self.db)
        self.history = SqliteHistory(self.db)
        self.audit = SqliteAuditStore(self.db, clock)

    async def open(self, *, create: bool = True) -> None:
        await self.db.open(create)

    async def close(self) -> None:
        await self.rate_limits.close()
        await self.db.close()

    async def ping(self) -> None:
        await self.db.run(self.db.ping)

    def twin(self) -> SqliteBackend:
        return SqliteBackend(self.url, self._settings, self.clock)

    @classmethod
    def url_problems(cls, url: str) -> list[str]:
        if not url.startswith("sqlite:///"):
            return [
                "sqlite URLs look like sqlite:///relative/path.db or sqlite:////abs/path.db,"
                f" got {mask_url(url)!r}"
            ]
        return []

    @classmethod
    def cache_tier(
        cls, url: str, origin: str, options: TierOptions, clock: Clock
    ) -> SharedTier | None:
        from conveyor.stores.sqlite.cache import SqliteCacheTier

        return SqliteCacheTier(
            url,
            origin=origin,
            sync_interval=options.sync_interval,
            timeout=options.timeout,
            clock=clock,
        )
