"""The Redis backend: every store on one Redis server or Redis Cluster.

All stores share one :class:`~conveyor.stores.redis.connection.RedisConnection`
but two: the cache's shared tier opens its own (it subscribes to invalidations
and may live on another server, through ``cache_url``), and so do the rate
limits (their socket timeouts are their budget, tens of milliseconds).
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.backend import BackendSettings
from conveyor.stores.cache import SharedTier, TierOptions
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


class RedisBackend:
    """A :class:`~conveyor.stores.backend.Backend` on Redis or Redis Cluster."""

    def __init__(self, url: str, settings: BackendSettings, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self._settings = settings
        self.conn = RedisConnection(url, timeout=settings.store_timeout)
        self.jobs = RedisJobStore(self.conn, clock)
        self.flows = RedisFlowStore(self.conn, clock)
        self.schedules = RedisScheduleStore(self.conn, clock)
        self.limits = RedisLimitsStore(self.conn, clock)
        self.rate_limits = RedisRateLimitStore(url, clock, settings.rate_limit_budget)
        self.dedupe = RedisDedupeStore(self.conn, clock)
        self.events = RedisEventStore(self.conn)
        self.history = RedisHistory(self.conn)
        self.audit = RedisAuditStore(self.conn, clock)

    async def open(self, *, create: bool = True) -> None:
        # A Redis database always exists; an admin command on an empty one finds nothing.
        await self.conn.open()

    async def close(self) -> None:
        await self.rate_limits.close()
        await self.conn.close()

    async def ping(self) -> None:
        await self.conn.ping()

    def twin(self) -> RedisBackend:
        return RedisBackend(self.url, self._settings, self.clock)

    @classmethod
    def url_problems(cls, url: str) -> list[str]:
        return []

    @classmethod
    def cache_tier(
        cls, url: str, origin: str, options: TierOptions, clock: Clock
    ) -> SharedTier | None:
        from conveyor.stores.redis.cache import RedisCacheTier

        return RedisCacheTier(url, origin=origin, prefix=options.prefix, timeout=options.timeout)
