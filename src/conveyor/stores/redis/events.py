"""RedisEventStore: event groups in one hash, processed ids in a zset per group.

``cv:events:groups`` maps a group to its subscriptions (JSON from the bus).
``cv:{evp:GROUP}:processed`` scores each processed event id by its expiry;
marking one also drops the expired ones, so the set stays bounded by the
retention. Both are single-key operations, so they work on a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.stores.redis.connection import RedisConnection

GROUPS_KEY = "cv:events:groups"


def _processed_key(group: str) -> str:
    return f"cv:{{evp:{group}}}:processed"


class RedisEventStore:
    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def save_group(self, group: str, spec: bytes, now: int) -> None:
        await self._conn.call(self._conn.client.hset, GROUPS_KEY, group, spec)

    async def groups(self) -> dict[str, bytes]:
        found = await self._conn.call(self._conn.client.hgetall, GROUPS_KEY)
        return {group.decode(): bytes(spec) for group, spec in sorted(found.items())}

    async def drop_group(self, group: str) -> bool:
        return bool(await self._conn.call(self._conn.client.hdel, GROUPS_KEY, group))

    async def processed(self, group: str, event_ids: Sequence[str], now: int) -> set[str]:
        if not event_ids:
            return set()
        scores = await self._conn.call(
            self._conn.client.zmscore, _processed_key(group), list(event_ids)
        )
        return {
            event_id
            for event_id, score in zip(event_ids, scores, strict=True)
            if score is not None and score > now
        }

    async def mark_processed(
        self, group: str, event_ids: Sequence[str], expires_at: int, now: int
    ) -> None:
        key = _processed_key(group)

        async def run() -> Any:
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.zadd(key, dict.fromkeys(event_ids, expires_at))
            pipe.zremrangebyscore(key, "-inf", now)
            return await pipe.execute()

        await self._conn.call(run)
