"""Leases in the Redis job store: renewals, releases, progress, stalls and expiry.

A lease call groups its jobs by queue (this process remembers the queue of
each job it holds) and runs one script per queue.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from conveyor.clock import Clock
from conveyor.stores.base import (
    STALLED_ERROR,
    LeaseStatus,
    ProgressUpdate,
    StalledJob,
    stalled_error,
)
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import job_key
from conveyor.stores.search import error_keys, joined_keys

_PURGE_BATCH = 1_000
_STALLED_KEYS = joined_keys(error_keys(stalled_error(2)))
"""The index keys of the error a stalled job fails with (the count is no word)."""


def _opt(value: bytes | None) -> bytes | str:
    return "" if value is None else value


class RedisLeases:
    """The lease steps of :class:`~conveyor.stores.redis.jobs.RedisJobStore`."""

    conn: RedisConnection
    clock: Clock

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        grouped = await self._group_leases(leases)
        for queue, items in grouped.items():
            answer = await self.conn.run_script(
                "renew", queue, [self.clock.now_ms() + lease_ms, *items]
            )
            statuses.update(_statuses(answer))
        located = {items[k] for items in grouped.values() for k in range(0, len(items), 2)}
        statuses.update((job_id, LeaseStatus.LOST) for job_id, _ in leases if job_id not in located)
        self.conn.forget_held(job_id for job_id, s in statuses.items() if s is LeaseStatus.LOST)
        return statuses

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        released = 0
        for queue, items in (await self._group_leases(leases)).items():
            released += int(
                await self.conn.run_script("release", queue, [self.clock.now_ms(), keep_ms, *items])
            )
        self.conn.forget_held(job_id for job_id, _ in leases)
        return released

    async def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        fields: dict[str, list[Any]] = {}
        for u in updates:
            fields[u.id] = [u.id, u.token, _opt(u.progress), len(u.logs)]
            fields[u.id] += [f"{line.at}\t{line.line}" for line in u.logs]
        statuses: dict[str, LeaseStatus] = {}
        grouped = await self._group_ids(list(fields))
        for queue, ids in grouped.items():
            args: list[Any] = [max_log_lines]
            for job_id in ids:
                args += fields[job_id]
            statuses.update(_statuses(await self.conn.run_script("progress", queue, args)))
        located = {job_id for ids in grouped.values() for job_id in ids}
        statuses.update((job_id, LeaseStatus.LOST) for job_id in fields if job_id not in located)
        self.conn.forget_held(job_id for job_id, s in statuses.items() if s is LeaseStatus.LOST)
        return statuses

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        """One pipelined read of the held jobs' lease fields (no script, no write)."""
        grouped = await self._group_ids([job_id for job_id, _ in leases])
        where = {job_id: queue for queue, ids in grouped.items() for job_id in ids}
        found = [(job_id, token) for job_id, token in leases if job_id in where]
        fields = ("token", "state", "cancel_requested")
        rows = await self.conn.pipelined(
            "hmget", [(job_key(where[i], i), *fields) for i, _ in found]
        )
        statuses = {job_id: LeaseStatus.LOST for job_id, _ in leases if job_id not in where}
        for (job_id, token), (held, state, cancel) in zip(found, rows, strict=True):
            if held != token.encode() or state != b"active":
                statuses[job_id] = LeaseStatus.LOST
            elif cancel == b"1":
                statuses[job_id] = LeaseStatus.CANCEL
        self.conn.forget_held(job_id for job_id, s in statuses.items() if s is LeaseStatus.LOST)
        return statuses

    async def _group_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
        grouped = await self._group_ids([job_id for job_id, _ in leases])
        out: dict[str, list[str]] = {}
        for queue, ids in grouped.items():
            wanted = set(ids)
            out[queue] = _pairs([lease for lease in leases if lease[0] in wanted])
        return out

    async def _group_ids(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        """Job ids by the queue that holds them (ids found nowhere are left out)."""
        grouped: dict[str, list[str]] = defaultdict(list)
        for job_id in job_ids:
            queue = await self.conn.queue_of_held(job_id)
            if queue is not None:
                grouped[queue].append(job_id)
        return grouped

    async def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        stalled: list[StalledJob] = []
        worker = secrets.token_hex(4)
        for queue in await self.conn.all_queues():
            args = [now, keep_failed_ms, exclusive_ms, worker, STALLED_ERROR, _STALLED_KEYS]
            rows = await self.conn.run_script("sweep", queue, args)
            for r in range(0, len(rows), 3):
                outcome = rows[r + 2].decode()
                stalled.append(
                    StalledJob(rows[r].decode(), queue, rows[r + 1].decode(), outcome == "failed")
                )
        return stalled

    async def purge_expired(self, now: int) -> int:
        purged = 0
        for queue in await self.conn.all_queues():
            while True:
                deleted = int(await self.conn.run_script("purge", queue, [now, _PURGE_BATCH]))
                purged += deleted
                if deleted < _PURGE_BATCH:
                    break
        return purged


def _pairs(leases: list[tuple[str, str]]) -> list[str]:
    return [part for lease in leases for part in lease]


def _statuses(flat: list[bytes]) -> dict[str, LeaseStatus]:
    return {flat[i].decode(): LeaseStatus(flat[i + 1].decode()) for i in range(0, len(flat), 2)}
