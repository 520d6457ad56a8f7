"""The Redis backend: every store on one Redis server or Redis Cluster.

All stores share one :class:`~conveyor.stores.redis.connection.RedisConnection`
but two: the cache's shared tier opens its own (it subscribes to invalidations
and may live on another server, through ``cache_url``), and so do the rate
limits (their socket timeouts are their budget, tens of milliseconds).
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.backend import BackendSettings, StoreMemory
from conveyor.stores.cache import SharedTier, TierOptions
from conveyor.stores.failures import StoreFailures
from conveyor.stores.redis import memory
from conveyor.stores.redis.audit import RedisAuditStore
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.dedupe import RedisDedupeStore
from conveyor.stores.redis.events import RedisEventStore
from conveyor.stores.redis.flows import RedisFlowStore
from conveyor.stores.redis.history import RedisHistory
from conveyor.stores.redis.jobs import RedisJobStore
from conveyor.stores.redis.limits import RedisLimitsStore
from conveyor.stores.redis.ratelimit import RedisRateLimitStore
from conveyor.stores.redis.schedules import RedisScheduleStore
from conveyor.stores.transactional import AppTransactionSql


class RedisBackend:
    """A :class:`~conveyor.stores.backend.Backend` on Redis or Redis Cluster."""

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
        self.conn = RedisConnection(url, timeout=settings.store_timeout, failures=self.failures)
        self.jobs = RedisJobStore(self.conn, clock)
        self.flows = RedisFlowStore(self.conn, clock)
        self.schedules = RedisScheduleStore(self.conn, clock)
        self.limits = RedisLimitsStore(self.conn, clock)
        self.rate_limits = RedisRateLimitStore(url, clock, settings.rate_limit_budget)
        self.dedupe = RedisDedupeStore(self.conn, clock)
        self.events = RedisEventStore(self.conn)
        self.app_transactions: AppTransactionSql | None = None  # not the app's database
        self.history = RedisHistory(self.conn)
        self.audit = RedisAuditStore(self.conn, clock)

    async def open(self, *, create: bool = True) -> None:
        # A Redis database always exists; an admin command on an empty one finds nothing.
        await self.conn.open()
        try:
            policies = await memory.eviction_policies(self.conn)
            allow = self._settings.redis_allow_eviction_risking_job_loss
            memory.check_eviction(policies, self.url, allow=allow)
        except BaseException:
            await self.conn.close()
            raise

    async def close(self) -> None:
        await self.rate_limits.close()
        await self.conn.close()

    async def ping(self) -> None:
        await self.conn.ping()

    async def memory(self) -> StoreMemory | None:
        return await memory.memory(self.conn)

    def twin(self) -> RedisBackend:
        return RedisBackend(self.url, self._settings, self.clock, self.failures)

    @classmethod
    def url_problems(cls, url: str) -> list[str]:
        return []

    @classmethod
    def cache_tier(
        cls, url: str, origin: str, options: TierOptions, clock: Clock
    ) -> SharedTier | None:
        from conveyor.stores.redis.cache import RedisCacheTier

        return RedisCacheTier(url, origin=origin, prefix=options.prefix, timeout=options.timeout)
