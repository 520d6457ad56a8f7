"""The cache's shared tier on PostgreSQL: entries in a table, invalidations by NOTIFY.

Tables ``cache_entries``, ``cache_tags`` and ``cache_locks`` live in the store's
schema (made by its migrations). Every write is one call of its function in
``sql/functions/cache.sql``, which also sends what it changed on
``<schema>_cache`` (NOTIFY is delivered at commit, in commit order, to every
listening process, never for a write that rolled back). Each process LISTENs
on its own connection and drops those keys from its local tier; every
(re)connection of that listener flushes the local tier, since notifications
sent while it was down are lost. So there is no invalidation log to read or
trim.

The stampede lock is a row (``SET NX PX`` in SQL: taken when absent or
expired); its waiters are woken by the unlock's notification, by the key's own
invalidation, or when they time out. Expired entries, expired locks and tag
rows of keys that are gone are deleted by each process every 30 s, in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
import secrets
import time
from collections.abc import Sequence

import msgspec
import structlog

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BadInputError
from conveyor.masking import mask_url
from conveyor.stores.cache import NOT_A_COUNTER, Invalidation, InvalidationSink
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.listener import Listener
from conveyor.stores.postgres.migrations import migrate

_log = structlog.get_logger("conveyor.cache")
_message = msgspec.json.Decoder(tuple[str, list[tuple[str, list[str]]]])
SWEEP_SECONDS = 30.0
SWEEP_BATCH = 1_000

_GET = (
    "SELECT value FROM {schema}.cache_entries"
    " WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)"
)
_GET_MANY = (
    "SELECT k.key, e.value FROM unnest($1::text[]) AS k (key)"
    " LEFT JOIN {schema}.cache_entries e ON e.key = k.key"
    " AND (e.expires_at IS NULL OR e.expires_at > $2)"
)
_TTL = "SELECT expires_at FROM {schema}.cache_entries WHERE key = $1"
_SET = "SELECT {schema}.cache_set($1::text[], $2::bytea[], $3::bigint[], $4::text[], $5)"
_DELETE = "SELECT {schema}.cache_delete($1::text[], $2, $3)"
_INCR = "SELECT {schema}.cache_incr($1, $2, $3, $4)"
_EXPIRE = "SELECT {schema}.cache_expire($1, $2, $3, $4)"
_INVALIDATE = "SELECT {schema}.cache_invalidate_tags($1::text[], $2)"
_NOTIFY = "SELECT {schema}.cache_notify($1, $2, $3::text[])"
_MATCHING = (
    "SELECT key FROM {schema}.cache_entries WHERE key LIKE $1 AND key > $2 ORDER BY key LIMIT $3"
)
_TRY_LOCK = (
    "INSERT INTO {schema}.cache_locks AS l (key, token, expires_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at"
    " WHERE l.expires_at <= $4 RETURNING token"
)
_UNLOCK = "SELECT {schema}.cache_unlock($1, $2, $3)"
_SWEEP_ENTRIES = (
    "DELETE FROM {schema}.cache_entries WHERE key IN (SELECT key FROM {schema}.cache_entries"
    " WHERE expires_at <= $1 LIMIT $2)"
)
_SWEEP_LOCKS = "DELETE FROM {schema}.cache_locks WHERE expires_at <= $1"
_SWEEP_TAGS = (  # tag rows of keys that are gone (expired, deleted)
    "DELETE FROM {schema}.cache_tags WHERE (tag, key) IN (SELECT t.tag, t.key"
    " FROM {schema}.cache_tags t WHERE NOT EXISTS (SELECT 1 FROM {schema}.cache_entries e"
    " WHERE e.key = t.key) LIMIT $1)"
)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching keys that start with ``prefix`` literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class PostgresCacheTier:
    """A :class:`~conveyor.stores.cache.SharedTier` in a PostgreSQL schema."""

    default_budget = 0.25
    """A round trip to a server process that may be busy with job traffic (as for
    rate limits): 50 ms is too little for a commit on a loaded machine."""

    def __init__(
        self, url: str, *, origin: str, timeout: float = 5.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.url = url
        self.origin = origin
        self._clock = clock
        self.db = PostgresConnection(url, timeout=timeout)
        self._listener = Listener(
            self.db, f"{self.db.channel}_cache", self._on_message, self._on_connect
        )
        self._sink: InvalidationSink | None = None
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._connecting = asyncio.Lock()
        self._ready = False

    # -- lifecycle -------------------------------------------------------------

    async def open(self, sink: InvalidationSink) -> None:
        if self._sweeper is not None:
            return
        self._sink = sink
        self._stopping.clear()
        self._listener.start()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="conveyor-cache-pg-sweep")
        # Connect and start with the invalidation feed up, outside any call's budget. If
        # PostgreSQL is down the cache starts degraded and connects when it can.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.db.timeout):
                await self._connect()
                await self._listener.connected.wait()

    async def _connect(self) -> None:
        """Open the pool and make the schema current, once (again after a failed try)."""
        if self._ready:
            return
        async with self._connecting:
            if not self._ready:
                await self.db.open()
                try:
                    await migrate(self.db, create=True, now=self._clock.now_ms())
                except BaseException:
                    await self.db.close()
                    raise
                self._ready = True

    async def close(self) -> None:
        self._stopping.set()
        if self._sweeper is not None:
            sweeper, self._sweeper = self._sweeper, None
            with contextlib.suppress(Exception):
                await sweeper
        await self._listener.stop()
        await self.db.close()
        self._ready = False
        self._wake(list(self._waiters))

    async def ping(self) -> None:
        await self._connect()
        await self.db.ping()
        if not self._listener.connected.is_set():
            raise ConnectionError(f"invalidation feed of {mask_url(self.url)} is down")

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        await self._connect()
        value: bytes | None = await self.db.fetchval(_GET, key, self._clock.now_ms())
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        await self._connect()
        rows = await self.db.fetch(_GET_MANY, list(keys), self._clock.now_ms())
        found = {r["key"]: r["value"] for r in rows}
        return [found.get(key) for key in keys]

    async def exists(self, key: str) -> bool:
        return (await self.get(key)) is not None

    async def ttl_ms(self, key: str) -> int | None:
        await self._connect()
        row = await self.db.fetchrow(_TTL, key)
        now = self._clock.now_ms()
        if row is None or (row["expires_at"] is not None and row["expires_at"] <= now):
            return None
        return -1 if row["expires_at"] is None else int(row["expires_at"]) - now

    # -- writes: one function call each, with its notification ---------------

    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tags: Sequence[str]
    ) -> None:
        latest = {key: (data, expires_at) for key, data, expires_at in items}  # last wins
        await self._connect()
        await self.db.execute(
            _SET,
            list(latest),
            [data for data, _ in latest.values()],
            [expires_at for _, expires_at in latest.values()],
            list(tags),
            self.origin,
        )

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        await self._connect()
        deleted: int = await self.db.fetchval(
            _DELETE, list(keys), self._clock.now_ms(), self.origin
        )
        return deleted

    async def incr(self, key: str, by: int) -> int:
        await self._connect()
        try:
            value: int = await self.db.fetchval(_INCR, key, by, self._clock.now_ms(), self.origin)
        except BadInputError:
            raise BadInputError(f"cannot increment {key!r}: {NOT_A_COUNTER}") from None
        return value

    async def expire(self, key: str, expires_at: int | None) -> bool:
        await self._connect()
        changed: bool = await self.db.fetchval(
            _EXPIRE, key, expires_at, self._clock.now_ms(), self.origin
        )
        return changed

    async def invalidate_tags(self, tags: Sequence[str]) -> list[str]:
        await self._connect()
        keys: list[str] = await self.db.fetchval(_INVALIDATE, list(tags), self.origin)
        return list(keys)

    async def delete_matching(self, prefix: str, pattern: str, batch: int) -> int:
        # The glob means what the local tier's does (fnmatch), so both drop the same keys.
        regex = re.compile(re.escape(prefix) + fnmatch.translate(pattern))
        await self._connect()
        deleted, after = 0, ""
        while True:
            rows = await self.db.fetch(_MATCHING, like_prefix(prefix), after, batch)
            keys = [r["key"] for r in rows]
            doomed = [key for key in keys if regex.match(key)]
            if doomed:
                deleted += await self.db.fetchval(_DELETE, doomed, self._clock.now_ms(), None)
            if len(keys) < batch:
                break
            after = keys[-1]
        await self.publish(self.origin, [("p", [prefix, pattern])])
        return deleted

    async def publish(self, origin: str, invalidations: Sequence[Invalidation]) -> None:
        await self._connect()
        for kind, items in invalidations:
            await self.db.execute(_NOTIFY, origin, kind, list(items))

    # -- the stampede lock -----------------------------------------------------

    async def try_lock(self, key: str, ttl_ms: int) -> str | None:
        # The waiter is registered before asking, so an unlock sent while the answer
        # is on its way still wakes it.
        waiter = self._waiters.get(key)
        if waiter is None or waiter.done():
            self._waiters[key] = asyncio.get_running_loop().create_future()
        token = secrets.token_hex(8)
        await self._connect()
        now = self._clock.now_ms()
        taken = await self.db.fetchval(_TRY_LOCK, key, token, now + ttl_ms, now)
        if taken is not None:
            self._waiters.pop(key, None)
            return token
        return None

    async def wait_unlocked(self, key: str, timeout: float) -> None:
        waiter = self._waiters.get(key)
        if waiter is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        finally:
            if self._waiters.get(key) is waiter:
                del self._waiters[key]

    async def unlock(self, key: str, token: str) -> None:
        await self._connect()
        await self.db.execute(_UNLOCK, key, token, self.origin)

    def _wake(self, keys: list[str]) -> None:
        for key in keys:
            waiter = self._waiters.get(key)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- the invalidation feed and the sweep -----------------------------------

    def _on_connect(self) -> None:
        # Connected (again): whatever was sent while we were away is lost.
        assert self._sink is not None
        self._sink("", [])
        self._wake(list(self._waiters))

    def _on_message(self, payload: str) -> None:
        assert self._sink is not None
        try:
            origin, invalidations = _message.decode(payload)
        except msgspec.DecodeError:
            return
        for what, items in invalidations:
            if what in ("k", "u"):
                self._wake(items)
        if origin != self.origin:
            self._sink(origin, [i for i in invalidations if i[0] != "u"])

    async def _sweep_loop(self) -> None:
        last = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._stopping.wait()
            if self._stopping.is_set() or time.monotonic() - last < SWEEP_SECONDS:
                continue
            last = time.monotonic()
            try:
                now = self._clock.now_ms()
                await self.db.execute(_SWEEP_ENTRIES, now, SWEEP_BATCH)
                await self.db.execute(_SWEEP_LOCKS, now)
                await self.db.execute(_SWEEP_TAGS, SWEEP_BATCH)
            except Exception as exc:  # unreachable or busy: the next round tries again
                _log.debug("cache: sweeping PostgreSQL failed", error=repr(exc))
