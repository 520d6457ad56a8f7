"""The worker's side of the Redis job store: enqueue, and finish + claim in one script.

Each queue's part of a call is one script (``enqueue.lua``, ``exchange.lua``)
on the queue's slot. Idle workers block on the queues' marker lists, which
enqueues push, instead of polling.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from conveyor.clock import Clock
from conveyor.stores.base import ClaimedJob, JobState, NewJob, Outcome
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import meta_key, queue_prefix
from conveyor.stores.redis.scripts import insert_args
from conveyor.stores.search import error_keys, joined_keys


def _opt(value: int | bytes | None) -> int | bytes | str:
    return "" if value is None else value


class RedisClaims:
    """Enqueue and the exchange step of :class:`~conveyor.stores.redis.jobs.RedisJobStore`."""

    conn: RedisConnection
    clock: Clock
    next_due: int | None
    """When the earliest job a claim could not take yet becomes due (a delay or a limit)."""

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        if len(jobs) == 1:  # one awaited enqueue, the commonest call: nothing to group
            (job,) = jobs
            if job.queue not in self.conn.known_queues:
                await self.conn.remember_queues((job.queue,))
            one = [self.clock.now_ms(), *insert_args(job)]
            (flag,) = await self.conn.run_script("enqueue", job.queue, one)
            return [bool(flag)]
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, job in enumerate(jobs):
            by_queue[job.queue].append(index)
        await self.conn.remember_queues(set(by_queue))
        now = self.clock.now_ms()
        batches: list[tuple[str, list[Any]]] = []
        for queue, indexes in by_queue.items():
            args: list[Any] = [now]
            for i in indexes:
                args += insert_args(jobs[i])
            batches.append((queue, args))
        if len(batches) > 1 and not self.conn.is_cluster:
            # Several queues on one server: one MULTI/EXEC, so all or none are written.
            answers = await self.conn.call(self._enqueue_together, batches)
        else:  # one queue is one script; on a cluster each queue's slot is written apart
            answers = [
                await self.conn.run_script("enqueue", queue, args) for queue, args in batches
            ]
        created = [False] * len(jobs)
        for indexes, flags in zip(by_queue.values(), answers, strict=True):
            for i, flag in zip(indexes, flags, strict=True):
                created[i] = bool(flag)
        return created

    async def _enqueue_together(self, batches: list[tuple[str, list[Any]]]) -> list[Any]:
        pipe = self.conn.client.pipeline(transaction=True)
        script = self.conn.script("enqueue")
        for queue, args in batches:
            await script(keys=[meta_key(queue)], args=args, client=pipe)
        return list(await pipe.execute())

    # -- the worker's round trip ---------------------------------------------

    async def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, outcome in enumerate(finished):
            by_queue[outcome.queue].append(index)
        accepted = [False] * len(finished)
        claimed: list[ClaimedJob] = []
        token = secrets.token_hex(8)
        next_due: list[int] = []
        order = list(queues) + [q for q in by_queue if q not in queues]
        for queue in order:
            indexes = by_queue.get(queue, [])
            want = claim - len(claimed) if queue in queues else 0
            if not indexes and want <= 0:
                continue
            now = self.clock.now_ms()
            args: list[Any] = [now, worker, now + lease_ms, want, token, len(indexes)]
            for i in indexes:
                o = finished[i]
                args += [o.id, o.token, o.state.value, o.finished_at, _opt(o.result)]
                args += [_opt(o.error), o.run_at, _opt(o.expires_at), _opt(o.keep)]
                args.append(_opt(o.progress))
                failed = o.state is JobState.FAILED
                args.append(joined_keys(error_keys(o.error)) if failed else "")
            flags, rows, due, wake_at = await self.conn.run_script("exchange", queue, args)
            for i, flag in zip(indexes, flags, strict=True):
                accepted[i] = bool(flag)
                self.conn.held.pop(finished[i].id, None)
            for r in range(0, len(rows), 9):
                job_id = rows[r].decode()
                self.conn.held[job_id] = queue
                claimed.append(
                    ClaimedJob(
                        id=job_id,
                        queue=queue,
                        task=rows[r + 1].decode(),
                        payload=rows[r + 2],
                        options=rows[r + 3],
                        attempts=int(rows[r + 4]),
                        token=token,
                        run_at=int(rows[r + 5]),
                        created_at=int(rows[r + 6]),
                        started_at=now,
                        priority=int(rows[r + 7]),
                        fence=int(rows[r + 8]),
                    )
                )
            if due:
                next_due.append(int(float(due)))
            if wake_at:  # the queue's rate limit or back-off stopped the claim until then
                next_due.append(int(wake_at))
        if claim and not claimed:
            self.next_due = min(next_due, default=None)
        return accepted, claimed

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        """Block until a job may be ready in ``queues``: on the queues' markers, up to 1 s.

        Enqueues push the marker, so there is no polling; ``poll_interval`` is not needed.
        """
        timeout = 1.0
        if self.next_due is not None:
            timeout = min(timeout, max(0.001, (self.next_due - self.clock.now_ms()) / 1000))
        timeout = max(0.001, min(timeout, self.conn.timeout / 2))
        markers = [f"{queue_prefix(q)}marker" for q in queues]
        if len(markers) > 1 and self.conn.is_cluster:
            markers = markers[:1]  # blocking on several keys needs them in one slot
        await self.conn.call(self.conn.client.blpop, markers, timeout=timeout)
