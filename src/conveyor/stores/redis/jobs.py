"""The distributed job store: Redis (6.2+, Valkey) or Redis Cluster.

Every state change is one Lua script over the keys of one queue (see
``lua/lib.lua`` for the key layout); all keys of a queue share the hash tag
``{queue}``, so a queue lives on one cluster slot and different queues
spread over the cluster. Scripts are loaded once and called by SHA
(redis-py reloads them on NOSCRIPT). Idle workers block on a per-queue
marker list instead of polling.

Job ids are looked up across the known queues (one round trip), since a
caller asks for a job by id alone.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib import resources
from typing import Any, TypeVar

import hiredis
import msgspec
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from conveyor.config import mask_url
from conveyor.errors import ConflictError, StoreUnavailableError
from conveyor.stores.base import (
    CancelResult,
    ClaimedJob,
    JobEvent,
    JobEventKind,
    JobRecord,
    JobState,
    LeaseStatus,
    LogLine,
    NewJob,
    Outcome,
    ProgressUpdate,
    QueueInfo,
    StalledJob,
    WorkerInfo,
    now_ms,
)
from conveyor.stores.redis.connection import RedisClient, connect

T = TypeVar("T")

QUEUES_KEY = "cv:queues"
WORKERS_KEY = "cv:workers"
_SCRIPTS = ("enqueue", "exchange", "renew", "progress", "sweep", "release", "purge", "admin")
_WORKER_DECODER = msgspec.json.Decoder(WorkerInfo)
_EVENT_POLL_SECONDS = 0.05
"""On a cluster, how often a reader of several queues' streams looks again."""


class _EventCursor(msgspec.Struct):
    """Where a reader is in each queue's stream; a queue it has not read starts at ``start``."""

    start: str
    at: dict[str, str] = {}


_CURSOR_DECODER = msgspec.json.Decoder(_EventCursor)


def meta_key(queue: str) -> str:
    return f"cv:{{{queue}}}:meta"


def _prefix(queue: str) -> str:
    return f"cv:{{{queue}}}:"


def _opt(value: int | bytes | None) -> int | bytes | str:
    return "" if value is None else value


class RedisJobStore:
    """A :class:`~conveyor.stores.base.JobStore` on Redis or Redis Cluster."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self._timeout = timeout
        self._client: RedisClient | None = None
        self._scripts: dict[str, Any] = {}
        self._known_queues: set[str] = set()
        self._next_due: int | None = None
        self._is_cluster = False
        # Queue of each job this process holds a lease on, so lease calls need no lookup.
        self._held: dict[str, str] = {}

    # -- connection ----------------------------------------------------------

    @property
    def client(self) -> Any:
        """The redis-py client (typed Any: with decode_responses=False replies are bytes)."""
        if self._client is None:
            raise StoreUnavailableError(f"Redis store {mask_url(self.url)} is not open")
        return self._client

    async def open(self) -> None:
        if self._client is not None:
            return
        client = connect(self.url, timeout=self._timeout)
        self._scripts = {name: client.register_script(script_source(name)) for name in _SCRIPTS}
        self._client = client
        self._is_cluster = isinstance(client, RedisCluster)
        await self._call(client.ping)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def ping(self) -> None:
        await self._call(self.client.ping)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run one Redis call; connection trouble becomes StoreUnavailableError."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(self._timeout):
                try:
                    return await fn(*args, **kwargs)
                except redis_errors.ConnectionError:
                    # A pooled connection may have died with a server restart; one more
                    # try gets a fresh one. (Scripts are token-checked or idempotent, so
                    # a script that did run before the reply was lost does no harm.)
                    return await fn(*args, **kwargs)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"Redis store {mask_url(self.url)} is unreachable: {type(exc).__name__}: {exc}"
            ) from None
        except redis_errors.ClusterError as exc:
            raise StoreUnavailableError(f"Redis cluster {mask_url(self.url)}: {exc}") from None

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """One Redis call for a store that shares this connection (the event store)."""
        return await self._call(fn, *args, **kwargs)

    async def _script(self, name: str, queue: str, args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        if self._is_cluster:
            return await self._call(script, keys=[meta_key(queue)], args=list(args))
        return await self._call(self._evalsha, script, meta_key(queue), args)

    async def _evalsha(self, script: Any, key: str, args: Sequence[Any]) -> Any:
        """EVALSHA on a pooled connection, skipping the client's per-command layers.

        On one server this is the hot path of every transition; redis-py's
        generic command path costs about a third of a loopback round trip.
        """
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        command = _pack_command(["EVALSHA", script.sha, 1, key, *args])
        try:
            await conn.send_packed_command(command, check_health=False)
            try:
                return await conn.read_response()
            except redis_errors.NoScriptError:  # the server restarted or was flushed
                await conn.send_command("SCRIPT", "LOAD", script.script)
                await conn.read_response()
                await conn.send_packed_command(command, check_health=False)
                return await conn.read_response()
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _pipelined(self, command: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run one read command many times in one round trip (per node on a cluster)."""
        if not calls:
            return []

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for args in calls:
                getattr(pipe, command)(*args)
            return list(await pipe.execute())

        return await self._call(run)

    async def _remember_queues(self, queues: set[str]) -> None:
        new = queues - self._known_queues
        if new:
            await self._call(self.client.sadd, QUEUES_KEY, *new)
            self._known_queues |= new

    async def _all_queues(self) -> list[str]:
        names = await self._call(self.client.smembers, QUEUES_KEY)
        return sorted(n.decode() for n in names)

    async def _locate(self, job_id: str) -> str | None:
        """The queue that holds ``job_id`` (ids are unique per queue)."""
        queues = await self._all_queues()
        found = await self._pipelined("exists", [(f"{_prefix(q)}job:{job_id}",) for q in queues])
        for queue, exists in zip(queues, found, strict=True):
            if exists:
                return queue
        return None

    # -- enqueue -------------------------------------------------------------

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, job in enumerate(jobs):
            by_queue[job.queue].append(index)
        await self._remember_queues(set(by_queue))
        now = now_ms()
        batches: list[tuple[str, list[Any]]] = []
        for queue, indexes in by_queue.items():
            args: list[Any] = [now]
            for i in indexes:
                j = jobs[i]
                args += [j.id, j.task, j.payload, j.options, j.priority, j.run_at]
                args += [j.created_at, j.max_stalled]
            batches.append((queue, args))
        if len(batches) > 1 and not self._is_cluster:
            # Several queues on one server: one MULTI/EXEC, so all or none are written.
            answers = await self._call(self._enqueue_together, batches)
        else:  # one queue is one script; on a cluster each queue's slot is written apart
            answers = [await self._script("enqueue", queue, args) for queue, args in batches]
        created = [False] * len(jobs)
        for indexes, flags in zip(by_queue.values(), answers, strict=True):
            for i, flag in zip(indexes, flags, strict=True):
                created[i] = bool(flag)
        return created

    async def _enqueue_together(self, batches: list[tuple[str, list[Any]]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=True)
        script = self._scripts["enqueue"]
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
            now = now_ms()
            args: list[Any] = [now, worker, now + lease_ms, want, token, len(indexes)]
            for i in indexes:
                o = finished[i]
                args += [o.id, o.token, o.state.value, o.finished_at, _opt(o.result)]
                args += [_opt(o.error), o.run_at, _opt(o.expires_at), _opt(o.keep)]
                args.append(_opt(o.progress))
            flags, rows, due, wake_at = await self._script("exchange", queue, args)
            for i, flag in zip(indexes, flags, strict=True):
                accepted[i] = bool(flag)
                self._held.pop(finished[i].id, None)
            for r in range(0, len(rows), 9):
                job_id = rows[r].decode()
                self._held[job_id] = queue
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
            self._next_due = min(next_due, default=None)
        return accepted, claimed

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        """Block until a job may be ready in ``queues``: on the queues' markers, up to 1 s.

        Enqueues push the marker, so there is no polling; ``poll_interval`` is not needed.
        """
        timeout = 1.0
        if self._next_due is not None:
            timeout = min(timeout, max(0.001, (self._next_due - now_ms()) / 1000))
        timeout = max(0.001, min(timeout, self._timeout / 2))
        markers = [f"{_prefix(q)}marker" for q in queues]
        if len(markers) > 1 and self._is_cluster:
            markers = markers[:1]  # blocking on several keys needs them in one slot
        await self._call(self.client.blpop, markers, timeout=timeout)

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        statuses: dict[str, LeaseStatus] = {}
        grouped = await self._group_leases(leases)
        for queue, items in grouped.items():
            answer = await self._script("renew", queue, [now_ms() + lease_ms, *items])
            statuses.update(_statuses(answer))
        located = {items[k] for items in grouped.values() for k in range(0, len(items), 2)}
        statuses.update((job_id, LeaseStatus.LOST) for job_id, _ in leases if job_id not in located)
        self._forget(job_id for job_id, s in statuses.items() if s is LeaseStatus.LOST)
        return statuses

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        released = 0
        for queue, items in (await self._group_leases(leases)).items():
            released += int(await self._script("release", queue, [now_ms(), keep_ms, *items]))
        self._forget(job_id for job_id, _ in leases)
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
            statuses.update(_statuses(await self._script("progress", queue, args)))
        located = {job_id for ids in grouped.values() for job_id in ids}
        statuses.update((job_id, LeaseStatus.LOST) for job_id in fields if job_id not in located)
        self._forget(job_id for job_id, s in statuses.items() if s is LeaseStatus.LOST)
        return statuses

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        """One pipelined read of the held jobs' lease fields (no script, no write)."""
        grouped = await self._group_ids([job_id for job_id, _ in leases])
        where = {job_id: queue for queue, ids in grouped.items() for job_id in ids}
        found = [(job_id, token) for job_id, token in leases if job_id in where]
        fields = ("token", "state", "cancel_requested")
        rows = await self._pipelined(
            "hmget", [(f"{_prefix(where[i])}job:{i}", *fields) for i, _ in found]
        )
        statuses = {job_id: LeaseStatus.LOST for job_id, _ in leases if job_id not in where}
        for (job_id, token), (held, state, cancel) in zip(found, rows, strict=True):
            if held != token.encode() or state != b"active":
                statuses[job_id] = LeaseStatus.LOST
            elif cancel == b"1":
                statuses[job_id] = LeaseStatus.CANCEL
        self._forget(job_id for job_id, s in statuses.items() if s is LeaseStatus.LOST)
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
            queue = self._held.get(job_id) or await self._locate(job_id)
            if queue is not None:
                grouped[queue].append(job_id)
        return grouped

    def _forget(self, job_ids: Iterable[str]) -> None:
        for job_id in list(job_ids):
            self._held.pop(job_id, None)

    # -- job events ------------------------------------------------------------

    async def events_start(self) -> str:
        seconds, micros = await self._call(self.client.time)
        # Stream ids are server ms; XREAD returns ids after the cursor, so start just
        # before this ms: an event written in it (even as <ms>-0) is not skipped.
        start = f"{int(seconds) * 1000 + int(micros) // 1000 - 1}-{2**64 - 1}"
        return msgspec.json.encode(_EventCursor(start)).decode()

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        position = _CURSOR_DECODER.decode(cursor)
        names = list(queues) if queues is not None else await self._all_queues()
        streams = {f"{_prefix(q)}events": position.at.get(q, position.start) for q in names}
        if not streams:
            await asyncio.sleep(min(block, _EVENT_POLL_SECONDS))
            return cursor, []
        block = min(block, self._timeout / 2)
        if self._is_cluster and len(streams) > 1:  # XREAD of several slots cannot block
            replies = await self._poll_streams(streams, limit, block)
        else:
            replies = await self._call(
                self.client.xread, streams, count=limit, block=max(1, int(block * 1000))
            )
        events: list[tuple[tuple[int, int], JobEvent]] = []
        for stream, entries in _stream_replies(replies):
            queue = stream.decode()[len("cv:{") : -len("}:events")]
            for entry_id, fields in entries:
                position.at[queue] = entry_id.decode()
                events.append((_entry_order(entry_id), _event(queue, entry_id, fields)))
        events.sort(key=lambda pair: pair[0])
        return msgspec.json.encode(position).decode(), [event for _, event in events]

    async def _poll_streams(self, streams: dict[str, str], limit: int, block: float) -> Any:
        deadline = asyncio.get_running_loop().time() + block
        while True:
            replies = await self._pipelined("xread", [({k: v}, limit) for k, v in streams.items()])
            found = [reply for reply in replies if reply]
            if found or asyncio.get_running_loop().time() >= deadline:
                return [stream for reply in found for stream in _stream_replies(reply)]
            await asyncio.sleep(_EVENT_POLL_SECONDS)

    async def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        stalled: list[StalledJob] = []
        worker = secrets.token_hex(4)
        for queue in await self._all_queues():
            rows = await self._script("sweep", queue, [now, keep_failed_ms, exclusive_ms, worker])
            for r in range(0, len(rows), 3):
                outcome = rows[r + 2].decode()
                stalled.append(
                    StalledJob(rows[r].decode(), queue, rows[r + 1].decode(), outcome == "failed")
                )
        return stalled

    async def purge_expired(self, now: int) -> int:
        purged = 0
        for queue in await self._all_queues():
            while True:
                deleted = int(await self._script("purge", queue, [now, 1000]))
                purged += deleted
                if deleted < 1000:
                    break
        return purged

    # -- reads and administration -------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        queue = await self._locate(job_id)
        if queue is None:
            return None
        return await self._read(queue, job_id)

    async def _read(self, queue: str, job_id: str) -> JobRecord | None:
        fields = await self._call(self.client.hgetall, f"{_prefix(queue)}job:{job_id}")
        return _record(job_id, queue, fields) if fields else None

    async def logs(self, job_id: str) -> list[LogLine]:
        queue = await self._locate(job_id)
        if queue is None:
            return []
        lines = await self._call(self.client.lrange, f"{_prefix(queue)}logs:{job_id}", 0, -1)
        out = []
        for raw in lines:
            at, _, line = raw.decode().partition("\t")
            out.append(LogLine(int(at), line))
        return out

    async def list_jobs(
        self, queue: str | None, state: JobState, offset: int, limit: int
    ) -> list[JobRecord]:
        queues = [queue] if queue is not None else await self._all_queues()
        candidates: list[tuple[float, str, str]] = []
        for q in queues:
            rows = await self._call(
                self.client.zrevrange,
                f"{_prefix(q)}state:{state.value}",
                0,
                offset + limit - 1,
                withscores=True,
            )
            candidates += [(score, member.decode(), q) for member, score in rows]
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        page = candidates[offset : offset + limit]
        rows = await self._pipelined("hgetall", [(f"{_prefix(q)}job:{i}",) for _, i, q in page])
        return [_record(i, q, row) for (_, i, q), row in zip(page, rows, strict=True) if row]

    async def counts(self) -> dict[str, dict[JobState, int]]:
        counts: dict[str, dict[JobState, int]] = {}
        queues = await self._all_queues()
        keys = [(f"{_prefix(q)}state:{s.value}",) for q in queues for s in JobState]
        sizes = iter(await self._pipelined("zcard", keys))
        for queue in queues:
            counts[queue] = {state: int(next(sizes)) for state in JobState}
        return counts

    async def oldest_waiting(self) -> dict[str, int]:
        """Per queue, the run_at of the earliest-created waiting job."""
        oldest: dict[str, int] = {}
        for queue in await self._all_queues():
            first = await self._call(self.client.zrange, f"{_prefix(queue)}state:waiting", 0, 0)
            if first:
                run_at = await self._call(
                    self.client.hget, f"{_prefix(queue)}job:{first[0].decode()}", "run_at"
                )
                if run_at is not None:
                    oldest[queue] = int(run_at)
        return oldest

    async def queues(self) -> list[QueueInfo]:
        names = await self._all_queues()
        paused = await self._pipelined("hget", [(meta_key(q), "paused") for q in names])
        return [QueueInfo(n, p == b"1") for n, p in zip(names, paused, strict=True)]

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._remember_queues({queue})
        await self._call(self.client.hset, meta_key(queue), "paused", "1" if paused else "0")
        if not paused:
            await self._call(self.client.lpush, f"{_prefix(queue)}marker", "1")

    async def retry(self, job_id: str, now: int) -> bool:
        queue = await self._locate(job_id)
        if queue is None:
            return False
        return bool(await self._script("admin", queue, ["retry", job_id, now]))

    async def cancel(self, job_id: str, now: int, keep_ms: int) -> CancelResult:
        queue = await self._locate(job_id)
        if queue is None:
            return CancelResult.MISSING
        answer = await self._script("admin", queue, ["cancel", job_id, now, keep_ms])
        return CancelResult(answer.decode())

    async def remove(self, job_id: str) -> bool:
        queue = await self._locate(job_id)
        if queue is None:
            return False
        answer = await self._script("admin", queue, ["remove", job_id])
        if answer == b"active":
            raise ConflictError(f"job {job_id} is active; cancel it first")
        if answer == b"child":
            raise ConflictError(f"job {job_id} is a pending flow child; cancel it first")
        return bool(answer)

    async def clean(self, queue: str, state: JobState, before: int, limit: int) -> int:
        if state is JobState.ACTIVE:
            raise ConflictError("active jobs cannot be cleaned; they are held by workers")
        answer = await self._script("admin", queue, ["clean", state.value, before, limit])
        if isinstance(answer, list):
            child = answer[1].decode()
            raise ConflictError(f"job {child} is a pending flow child; cancel it first")
        return int(answer)

    async def heartbeat(self, worker: WorkerInfo, ttl_ms: int) -> None:
        entry = msgspec.json.encode({"until": now_ms() + ttl_ms, "info": worker})
        await self._call(self.client.hset, WORKERS_KEY, worker.id, entry)

    async def unregister(self, worker_id: str) -> None:
        await self._call(self.client.hdel, WORKERS_KEY, worker_id)

    async def workers(self) -> list[WorkerInfo]:
        entries = await self._call(self.client.hgetall, WORKERS_KEY)
        now = now_ms()
        live, dead = [], []
        for worker_id, raw in entries.items():
            entry = msgspec.json.decode(raw)
            if entry["until"] >= now:
                live.append(msgspec.convert(entry["info"], WorkerInfo))
            else:
                dead.append(worker_id)
        if dead:
            await self._call(self.client.hdel, WORKERS_KEY, *dead)
        return sorted(live, key=lambda w: w.id)


def _pack_command(args: Sequence[Any]) -> bytes:
    """RESP-encode a command with hiredis's C packer (redis-py's generic one is slow)."""
    packed: bytes = hiredis.pack_command(tuple(args))
    return packed


def _lua(name: str) -> str:
    return resources.files("conveyor.stores.redis").joinpath(f"lua/{name}.lua").read_text()


_PARTS = {"exchange": ("limits", "exchange"), "backoff": ("backoff", "release")}
"""Scripts made of several files (after lib.lua); the others are lib.lua + their own file."""


def script_source(name: str) -> str:
    return "".join(_lua(part) for part in ("lib", *_PARTS.get(name, (name,))))


def _pairs(leases: list[tuple[str, str]]) -> list[str]:
    return [part for lease in leases for part in lease]


def _statuses(flat: list[bytes]) -> dict[str, LeaseStatus]:
    return {flat[i].decode(): LeaseStatus(flat[i + 1].decode()) for i in range(0, len(flat), 2)}


def _stream_replies(replies: Any) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """XREAD's answer (RESP2) as (stream, entries) pairs."""
    return [(name, entries) for name, entries in replies or []]


def _entry_order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq)


def _event(queue: str, entry_id: bytes, fields: dict[bytes, bytes]) -> JobEvent:
    data = fields.get(b"data")
    return JobEvent(
        kind=JobEventKind(fields[b"kind"].decode()),
        job_id=fields[b"job"].decode(),
        queue=queue,
        at=_entry_order(entry_id)[0],
        data=data or None,
    )


def _record(job_id: str, queue: str, raw: dict[bytes, bytes]) -> JobRecord:
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
        attempts=int(f["attempts"]),
        stalls=int(f["stalls"]),
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
