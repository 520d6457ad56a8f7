"""Debounce and throttle keys on Redis: ``cv:{queue}:dedupe:<key>``, one script per queue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from conveyor.clock import Clock
from conveyor.stores.base import NewJob
from conveyor.stores.dedupe import Dedupe
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.scripts import insert_args


class RedisDedupeStore:
    """A :class:`~conveyor.stores.dedupe.DedupeStore` on the Redis backend's connection.

    A key is a string holding the job id, expiring at ``until`` (``SET ... PXAT``).
    """

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def enqueue_deduped(
        self, jobs: Sequence[tuple[NewJob, Dedupe]]
    ) -> list[tuple[str, bool]]:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, (job, _) in enumerate(jobs):
            by_queue[job.queue].append(index)
        await self._conn.remember_queues(set(by_queue))
        answers: list[tuple[str, bool]] = [("", False)] * len(jobs)
        for queue, indexes in by_queue.items():
            args: list[Any] = [self._clock.now_ms()]
            for i in indexes:
                j, d = jobs[i]
                args += [d.mode, d.key, d.until, *insert_args(j)]
            flat = await self._conn.run_script("dedupe", queue, args)
            for n, i in enumerate(indexes):
                answers[i] = (flat[2 * n].decode(), bool(flat[2 * n + 1]))
        return answers
