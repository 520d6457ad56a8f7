"""RedisEventStore: event groups in one hash, processed ids in a zset per group.

``cv:events:groups`` maps a group to the JSON list of its event types.
``cv:{evp:GROUP}:processed`` scores each processed event id by its expiry;
marking one also drops the expired ones, so the set stays bounded by the
retention. Both are single-key operations, so they work on a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor.stores.redis.jobs import RedisJobStore

GROUPS_KEY = "cv:events:groups"


def _processed_key(group: str) -> str:
    return f"cv:{{evp:{group}}}:processed"


class RedisEventStore:
    def __init__(self, jobs: RedisJobStore) -> None:
        self._jobs = jobs

    async def save_group(self, group: str, types: Sequence[str], now: int) -> None:
        encoded = msgspec.json.encode(sorted(set(types)))
        await self._jobs.call(self._jobs.client.hset, GROUPS_KEY, group, encoded)

    async def groups(self) -> dict[str, list[str]]:
        found = await self._jobs.call(self._jobs.client.hgetall, GROUPS_KEY)
        return {
            group.decode(): msgspec.json.decode(types) for group, types in sorted(found.items())
        }

    async def drop_group(self, group: str) -> bool:
        return bool(await self._jobs.call(self._jobs.client.hdel, GROUPS_KEY, group))

    async def is_processed(self, group: str, event_id: str, now: int) -> bool:
        score = await self._jobs.call(self._jobs.client.zscore, _processed_key(group), event_id)
        return score is not None and score > now

    async def mark_processed(self, group: str, event_id: str, expires_at: int, now: int) -> None:
        key = _processed_key(group)

        async def run() -> Any:
            pipe = self._jobs.client.pipeline(transaction=True)
            pipe.zadd(key, {event_id: expires_at})
            pipe.zremrangebyscore(key, "-inf", now)
            return await pipe.execute()

        await self._jobs.call(run)
