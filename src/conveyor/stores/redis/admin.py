"""Reads and administration of the Redis job store, and the worker registry.

A job is read by id alone, so its queue is looked up first (one pipelined
``EXISTS`` over the known queues).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor.clock import Clock
from conveyor.stores.base import (
    CancelResult,
    Cleaned,
    JobRecord,
    JobState,
    LogLine,
    QueueInfo,
    RemoveResult,
    WorkerInfo,
)
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import WORKERS_KEY, args_key, job_key, meta_key, queue_prefix


class RedisJobAdmin:
    """The reads and administrative steps of :class:`~conveyor.stores.redis.jobs.RedisJobStore`."""

    conn: RedisConnection
    clock: Clock

    async def get(self, job_id: str) -> JobRecord | None:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return None
        return await self._read(queue, job_id)

    async def _read(self, queue: str, job_id: str) -> JobRecord | None:
        (fields,) = await read_hashes(self.conn, [(queue, job_id)])
        return job_record(job_id, queue, fields) if fields else None

    async def logs(self, job_id: str) -> list[LogLine]:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return []
        lines = await self.conn.call(
            self.conn.client.lrange, f"{queue_prefix(queue)}logs:{job_id}", 0, -1
        )
        out = []
        for raw in lines:
            at, _, line = raw.decode().partition("\t")
            out.append(LogLine(int(at), line))
        return out

    async def counts(self) -> dict[str, dict[JobState, int]]:
        counts: dict[str, dict[JobState, int]] = {}
        queues = await self.conn.all_queues()
        keys = [(f"{queue_prefix(q)}state:{s.value}",) for q in queues for s in JobState]
        sizes = iter(await self.conn.pipelined("zcard", keys))
        for queue in queues:
            counts[queue] = {state: int(next(sizes)) for state in JobState}
        return counts

    async def oldest_waiting(self) -> dict[str, int]:
        """Per queue, the run_at of its earliest-created waiting job."""
        oldest: dict[str, int] = {}
        for queue in await self.conn.all_queues():
            first = await self.conn.call(
                self.conn.client.zrange, f"{queue_prefix(queue)}state:waiting", 0, 0
            )
            if first:
                run_at = await self.conn.call(
                    self.conn.client.hget, job_key(queue, first[0].decode()), "run_at"
                )
                if run_at is not None:
                    oldest[queue] = int(run_at)
        return oldest

    async def queues(self) -> list[QueueInfo]:
        names = await self.conn.all_queues()
        paused = await self.conn.pipelined("hget", [(meta_key(q), "paused") for q in names])
        return [QueueInfo(n, p == b"1") for n, p in zip(names, paused, strict=True)]

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self.conn.remember_queues({queue})

        async def run() -> None:
            # One transaction: the flag and, on resume, the wake-up token, which stays one
            # token however many resumes (lib.lua's wake_workers pushes onto an empty list).
            pipe = self.conn.client.pipeline(transaction=True)
            pipe.hset(meta_key(queue), "paused", "1" if paused else "0")
            if not paused:
                marker = f"{queue_prefix(queue)}marker"
                pipe.lpush(marker, "1")
                pipe.ltrim(marker, 0, 0)
            await pipe.execute()

        await self.conn.call(run)

    async def retry(self, job_id: str, now: int) -> bool:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return False
        return bool(await self.conn.run_script("admin", queue, ["retry", job_id, now]))

    async def retry_failed(self, queue: str, limit: int, now: int) -> int:
        return int(await self.conn.run_script("admin", queue, ["retry_failed", limit, now]))

    async def promote(self, job_id: str, now: int) -> bool:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return False
        return bool(await self.conn.run_script("admin", queue, ["promote", job_id, now]))

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return CancelResult.MISSING
        answer = await self.conn.run_script("admin", queue, ["cancel", job_id, now, keep_ms])
        return CancelResult(answer.decode())

    async def remove(self, job_id: str) -> RemoveResult:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return RemoveResult.MISSING
        answer = await self.conn.run_script("admin", queue, ["remove", job_id])
        if answer == b"active":
            return RemoveResult.ACTIVE
        if answer == b"child":
            return RemoveResult.PENDING_CHILD
        return RemoveResult.REMOVED if answer else RemoveResult.MISSING

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> Cleaned:
        answer = await self.conn.run_script("admin", queue, ["clean", state.value, before, limit])
        if isinstance(answer, list):
            return Cleaned(0, answer[1].decode())
        return Cleaned(int(answer))

    async def count_clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        args = ["count_clean", state.value, before, limit]
        return int(await self.conn.run_script("admin", queue, args))

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        entry = msgspec.json.encode({"until": self.clock.now_ms() + ttl_ms, "info": worker})
        await self.conn.call(self.conn.client.hset, WORKERS_KEY, worker.id, entry)

    async def unregister(self, worker_id: str) -> None:
        await self.conn.call(self.conn.client.hdel, WORKERS_KEY, worker_id)

    async def workers(self) -> list[WorkerInfo]:
        entries = await self.conn.call(self.conn.client.hgetall, WORKERS_KEY)
        now = self.clock.now_ms()
        live, dead = [], []
        for worker_id, raw in entries.items():
            entry = msgspec.json.decode(raw)
            if entry["until"] >= now:
                live.append(msgspec.convert(entry["info"], WorkerInfo))
            else:
                dead.append(worker_id)
        if dead:
            await self.conn.call(self.conn.client.hdel, WORKERS_KEY, *dead)
        return sorted(live, key=lambda w: w.id)


async def read_hashes(
    conn: RedisConnection, jobs: Sequence[tuple[str, str]]
) -> list[dict[bytes, bytes]]:
    """The hashes of jobs given as (queue, id), each with its payload among the fields
    (``lua/lib.lua``: ``job_fields``), in one round trip; {} for a job that is gone."""
    if not jobs:
        return []

    async def run() -> list[Any]:
        pipe = conn.client.pipeline(transaction=False)
        for queue, job_id in jobs:
            pipe.hgetall(job_key(queue, job_id))
            pipe.get(args_key(queue, job_id))
        return list(await pipe.execute())

    replies = await conn.call(run)
    hashes = []
    for fields, payload in zip(replies[0::2], replies[1::2], strict=True):
        if fields and payload is not None:
            fields[b"payload"] = payload
        hashes.append(fields)
    return hashes


def job_record(job_id: str, queue: str, raw: dict[bytes, bytes]) -> JobRecord:
    """A job's record from its hash."""
    f = {k.decode(): v for k, v in raw.items()}

    def optional_int(name: str) -> int | None:
        return int(f[name]) if name in f else None

    return JobRecord(
        id=job_id,
        queue=queue,
        task=f["task"].decode(),
        state=JobState(f["state"].decode()),
        priority=int(f["priority"]),
        payload=f["payload"],
        options=f["options"],
        attempts=int(f.get("attempts", 0)),  # fields at their default are not written
        stalls=int(f.get("stalls", 0)),
        max_stalled=int(f["max_stalled"]),
        created_at=int(f["created_at"]),
        run_at=int(f["run_at"]),
        started_at=optional_int("started_at"),
        finished_at=optional_int("finished_at"),
        progress=f.get("progress"),
        result=f.get("result"),
        error=f.get("error"),
        worker=f["worker"].decode() if "worker" in f else None,
        lease_until=optional_int("lease_until"),
        cancel_requested=f.get("cancel_requested") == b"1",
        fence=int(f.get("fence", 0)),
    )
