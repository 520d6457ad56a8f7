"""The distributed job store: Redis (6.2+, Valkey) or Redis Cluster.

Every state change is one Lua script over the keys of one queue (see
``lua/lib.lua`` for the key layout); all keys of a queue share the hash tag
``{queue}``, so a queue lives on one cluster slot and different queues
spread over the cluster. Its steps are grouped by concern: ``claims.py``,
``leases.py``, ``job_events.py``, ``admin.py`` and ``pages.py`` (listings,
searches, timelines), all over the backend's one
:class:`~conveyor.stores.redis.connection.RedisConnection`.
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.redis.admin import RedisJobAdmin
from conveyor.stores.redis.claims import RedisClaims
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.job_events import RedisJobEvents
from conveyor.stores.redis.leases import RedisLeases
from conveyor.stores.redis.pages import RedisPages


class RedisJobStore(RedisClaims, RedisLeases, RedisJobEvents, RedisJobAdmin, RedisPages):
    """A :class:`~conveyor.stores.base.JobStore` on Redis or Redis Cluster."""

    def exchanges_in_flight(self, concurrency: int) -> int:
        return 2

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self.url = conn.url
        self.conn = conn
        self.clock = clock
        self.next_due = None
