"""Queue limits on Redis: fields of the queue's meta hash and keys of its slot (lua/limits.lua).

The claim in ``exchange.lua`` enforces them; this store only writes and reads them.
"""

from __future__ import annotations

from typing import Any

from conveyor.clock import Clock
from conveyor.stores.limits import QueueLimits
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import meta_key


def _opt(value: int | None) -> int | str:
    return "" if value is None else value


class RedisLimitsStore:
    """A :class:`~conveyor.stores.limits.LimitsStore` on the Redis backend's connection."""

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def set_limits(
        self, queue: str, concurrency: int | None, rate: int | None, period_ms: int
    ) -> None:
        await self._conn.remember_queues({queue})
        args: list[Any] = ["queue", _opt(concurrency), _opt(rate), period_ms]
        await self._conn.run_script("limits_admin", queue, args)

    async def set_task_concurrency(self, queue: str, task: str, limit: int | None) -> None:
        await self._conn.remember_queues({queue})
        await self._conn.run_script("limits_admin", queue, ["task", task, _opt(limit)])

    async def get_limits(self, queue: str) -> QueueLimits:
        client = self._conn.client
        fields = ("concurrency", "rate", "period_ms", "backoff_until")
        concurrency, rate, period_ms, backoff_until = await self._conn.call(
            client.hmget, meta_key(queue), *fields
        )
        tasks = await self._conn.call(client.hgetall, f"cv:{{{queue}}}:tasklimits")
        return QueueLimits(
            concurrency=None if concurrency is None else int(concurrency),
            rate=None if rate is None else int(rate),
            period_ms=1000 if period_ms is None else int(period_ms),
            tasks={name.decode(): int(cap) for name, cap in tasks.items()},
            backoff_until=0 if backoff_until is None else int(backoff_until),
        )

    async def backoff(
        self, queue: str, until: int, leases: list[tuple[str, str]], keep_ms: int
    ) -> int:
        await self._conn.remember_queues({queue})
        pairs = [part for lease in leases for part in lease]
        answer = await self._conn.run_script(
            "backoff", queue, [until, self._clock.now_ms(), keep_ms, *pairs]
        )
        self._conn.forget_held(job_id for job_id, _ in leases)
        return int(answer)
