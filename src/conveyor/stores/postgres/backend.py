"""The PostgreSQL backend: every store in one schema, over one connection pool.

All stores share one :class:`~conveyor.stores.postgres.connection.PostgresConnection`
but the rate limiter, which has a small pool of its own (a check per request never
waits behind job traffic); the cache's shared tier opens its own pool and its own
listening connection (it may live elsewhere, through ``cache_url``). Opening the
backend brings the schema up to date (``migrations.py``).
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.backend import BackendSettings, StoreMemory
from conveyor.stores.cache import SharedTier, TierOptions
from conveyor.stores.failures import StoreFailures
from conveyor.stores.postgres.audit import PostgresAuditStore
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.dedupe import PostgresDedupeStore
from conveyor.stores.postgres.events import PostgresEventStore
from conveyor.stores.postgres.flows import PostgresFlowStore
from conveyor.stores.postgres.history import PostgresHistory
from conveyor.stores.postgres.jobs import PostgresJobStore
from conveyor.stores.postgres.limits import PostgresLimitsStore
from conveyor.stores.postgres.migrations import migrate
from conveyor.stores.postgres.ratelimit import PostgresRateLimitStore
from conveyor.stores.postgres.schedules import PostgresScheduleStore
from conveyor.stores.postgres.transactions import PostgresAppTransactions
from conveyor.stores.postgres.url import url_problems


class PostgresBackend:
    """A :class:`~conveyor.stores.backend.Backend` in one schema of a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        settings: BackendSettings,
        clock: Clock,
        failures: StoreFailures | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self._settings = settings
        self.failures = StoreFailures() if failures is None else failures
        self.db = PostgresConnection(url, timeout=settings.store_timeout, failures=self.failures)
        self.jobs = PostgresJobStore(url, self.db, clock)
        self.flows = PostgresFlowStore(self.db, clock)
        self.schedules = PostgresScheduleStore(self.db, clock)
        self.limits = PostgresLimitsStore(self.db, clock)
        self.rate_limits = PostgresRateLimitStore(url, clock, settings.rate_limit_budget)
        self.dedupe = PostgresDedupeStore(self.db, clock)
        self.events = PostgresEventStore(self.db)
        self.app_transactions = PostgresAppTransactions(self.db)
        self.history = PostgresHistory(self.db)
        self.audit = PostgresAuditStore(self.db, clock)

    async def open(self, *, create: bool = True) -> None:
        if self.db.is_open:
            return
        await self.db.open()
        try:
            await migrate(self.db, create=create, now=self.clock.now_ms())
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        await self.jobs.close()
        await self.rate_limits.close()
        await self.db.close()

    async def ping(self) -> None:
        await self.db.ping()

    async def memory(self) -> StoreMemory | None:
        return None  # a database on disk: no memory limit, nothing evicted

    def twin(self) -> PostgresBackend:
        return PostgresBackend(self.url, self._settings, self.clock, self.failures)

    @classmethod
    def url_problems(cls, url: str) -> list[str]:
        return url_problems(url)

    @classmethod
    def cache_tier(
        cls, url: str, origin: str, options: TierOptions, clock: Clock
    ) -> SharedTier | None:
        from conveyor.stores.postgres.cache import PostgresCacheTier

        return PostgresCacheTier(url, origin=origin, timeout=options.timeout, clock=clock)
