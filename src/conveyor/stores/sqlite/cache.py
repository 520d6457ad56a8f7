"""The cache's shared tier for several processes on one machine: a SQLite file.

The file is a sibling of the job store's (``conveyor.db`` -> ``conveyor.cache.db``),
so a cache write never queues behind a job transaction for the write lock.

* **Invalidation.** Every write appends what it changed to
  ``cache_invalidations`` in the same transaction. Each process reads the
  rows past the last sequence number it saw every ``sync_interval`` (one
  indexed query) and drops those keys from its local tier. A local entry is
  therefore stale for at most ``sync_interval`` (plus one query) after
  another process changed it. Rows older than ``log_keep`` seconds are
  trimmed; a process that fell further behind than that (a gap in the
  sequence) flushes its whole local tier.
* **Stampede lock.** An OS record lock (``record_lock.py``) on one byte of
  ``<name>.cache.lock``, chosen by a hash of the key. A waiter blocks on the
  same byte in a thread and wakes the moment the holder lets go: no polling,
  and a holder that dies (even by SIGKILL) releases it with its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import structlog

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BadInputError
from conveyor.stores.cache import NOT_A_COUNTER, Invalidation, InvalidationSink
from conveyor.stores.sqlite import record_lock
from conveyor.stores.sqlite.database import Database, path_from_url

_LOCK_SLOTS = 2**30
_log = structlog.get_logger("conveyor.cache")
_SWEEP_EVERY = 30.0
_encoder = msgspec.json.Encoder()
_pair = msgspec.json.Decoder(list[str])


def cache_path(url: str) -> Path:
    """``sqlite:///dir/conveyor.db`` -> ``dir/conveyor.cache.db``."""
    path = path_from_url(url)
    return path.with_name(f"{path.stem}.cache.db")


def sqlite_glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


class SqliteCacheTier:
    """A :class:`~conveyor.stores.cache.SharedTier` in one SQLite file."""

    default_budget = 2.0
    """A busy file, not a network: a call may wait on other processes' commits."""

    def __init__(
        self,
        url: str,
        *,
        origin: str,
        sync_interval: float = 0.05,
        timeout: float = 5.0,
        log_keep: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self.url = url
        self.origin = origin
        self.sync_interval = sync_interval
        self.log_keep_ms = int(log_keep * 1000)
        path = cache_path(url)
        self.db = Database(
            path, synchronous="NORMAL", busy_timeout_s=timeout, schema="cache_schema.sql"
        )
        self._lock_path = path.with_suffix(".lock")
        self._lock_fd: int | None = None
        self._held: dict[int, asyncio.Event] = {}
        self._waiting = ThreadPoolExecutor(64, thread_name_prefix="conveyor-cache-lock")
        self._sink: InvalidationSink | None = None
        self._seen = 0
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    async def open(self, sink: InvalidationSink) -> None:
        if self._poller is not None:
            return
        await self.db.open()
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._sink = sink
        self._seen = await self.db.run(self._last_seq)
        self._stopping.clear()
        self._poller = asyncio.create_task(self._poll(), name="conveyor-cache-sqlite-sync")

    async def close(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            poller, self._poller = self._poller, None
            with contextlib.suppress(Exception):
                await poller
            await self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._waiting.shutdown(wait=False, cancel_futures=True)

    async def ping(self) -> None:
        await self.db.run(self.db.conn.execute, "SELECT 1")

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return (await self.db.run(self._get_many, [key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self.db.run(self._get_many, keys)

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock.now_ms()
        found: list[bytes | None] = []
        for key in keys:
            row = self.db.conn.execute(
                "SELECT value, expires_at FROM cache_entries WHERE key = ?", (key,)
            ).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            found.append(row[0] if live else None)
        return found

    async def exists(self, key: str) -> bool:
        return (await self.get(key)) is not None

    async def ttl_ms(self, key: str) -> int | None:
        return await self.db.run(self._ttl_ms, key)

    def _ttl_ms(self, key: str) -> int | None:
        row = self.db.conn.execute(
            "SELECT expires_at FROM cache_entries WHERE key = ?", (key,)
        ).fetchone()
        now = self._clock.now_ms()
        if row is None or (row[0] is not None and row[0] <= now):
            return None
        return -1 if row[0] is None else row[0] - now

    # -- writes: one transaction each, with its invalidation rows --------------

    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tags: Sequence[str]
    ) -> None:
        await self.db.run(self._set_many, items, tags)

    def _set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tags: Sequence[str]
    ) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO cache_entries (key, value, expires_at) VALUES (?, ?, ?)",
                items,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO cache_tags (tag, key) VALUES (?, ?)",
                [(tag, key) for tag in tags for key, _, _ in items],
            )
            self._log(conn, "k", [key for key, _, _ in items])

    async def delete(self, keys: Sequence[str]) -> int:
        return await self.db.run(self._delete, keys)

    def _delete(self, keys: Sequence[str]) -> int:
        with self.db.transaction() as conn:
            deleted = self._delete_in(conn, keys)
            self._log(conn, "k", keys)
        return deleted

    def _delete_in(self, conn: sqlite3.Connection, keys: Sequence[str]) -> int:
        now = self._clock.now_ms()
        deleted = 0
        for key in keys:
            row = conn.execute(
                "DELETE FROM cache_entries WHERE key = ? RETURNING expires_at", (key,)
            ).fetchone()
            deleted += row is not None and (row[0] is None or row[0] > now)
        return deleted

    async def incr(self, key: str, by: int) -> int:
        return await self.db.run(self._incr, key, by)

    def _incr(self, key: str, by: int) -> int:
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT value, expires_at FROM cache_entries WHERE key = ?", (key,)
            ).fetchone()
            live = row is not None and (row[1] is None or row[1] > self._clock.now_ms())
            current = _as_int(row[0]) if live else 0
            expires_at = row[1] if live else None
            value = current + by
            conn.execute(
                "INSERT OR REPLACE INTO cache_entries (key, value, expires_at) VALUES (?, ?, ?)",
                (key, str(value).encode(), expires_at),
            )
            self._log(conn, "k", [key])
        return value

    async def expire(self, key: str, expires_at: int | None) -> bool:
        return await self.db.run(self._expire, key, expires_at)

    def _expire(self, key: str, expires_at: int | None) -> bool:
        with self.db.transaction() as conn:
            changed = conn.execute(
                "UPDATE cache_entries SET expires_at = ?"
                " WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (expires_at, key, self._clock.now_ms()),
            ).rowcount
            self._log(conn, "k", [key])
        return changed > 0

    async def invalidate_tags(self, tags: Sequence[str]) -> list[str]:
        return await self.db.run(self._invalidate_tags, tags)

    def _invalidate_tags(self, tags: Sequence[str]) -> list[str]:
        with self.db.transaction() as conn:
            keys: set[str] = set()
            for tag in tags:
                rows = conn.execute("DELETE FROM cache_tags WHERE tag = ? RETURNING key", (tag,))
                keys.update(row[0] for row in rows)
            ordered = sorted(keys)
            self._delete_in(conn, ordered)
            self._log(conn, "k", ordered)
        return ordered

    async def delete_matching(self, prefix: str, pattern: str, batch: int) -> int:
        glob = sqlite_glob_escape(prefix) + pattern
        deleted = 0
        while True:
            n = await self.db.run(self._delete_batch, glob, batch)
            deleted += n
            if n < batch:
                break
        await self.publish(self.origin, [("p", [prefix, pattern])])
        return deleted

    def _delete_batch(self, glob: str, batch: int) -> int:
        with self.db.transaction() as conn:
            rows = conn.execute(
                "DELETE FROM cache_entries WHERE key IN"
                " (SELECT key FROM cache_entries WHERE key GLOB ? LIMIT ?)",
                (glob, batch),
            )
            return rows.rowcount

    async def publish(self, origin: str, invalidations: Sequence[Invalidation]) -> None:
        await self.db.run(self._publish, origin, invalidations)

    def _publish(self, origin: str, invalidations: Sequence[Invalidation]) -> None:
        with self.db.transaction() as conn:
            for kind, items in invalidations:
                self._log(conn, kind, items, origin)

    def _log(
        self, conn: sqlite3.Connection, kind: str, items: Sequence[str], origin: str = ""
    ) -> None:
        now = self._clock.now_ms()
        if kind == "p":  # one row per (prefix, pattern) pair
            targets = [
                _encoder.encode(list(items[i : i + 2])).decode() for i in range(0, len(items), 2)
            ]
        else:
            targets = list(items)
        conn.executemany(
            "INSERT INTO cache_invalidations (origin, kind, target, at) VALUES (?, ?, ?, ?)",
            [(origin or self.origin, kind, target, now) for target in targets],
        )

    # -- the invalidation feed -------------------------------------------------

    def _last_seq(self) -> int:
        row = self.db.conn.execute("SELECT max(seq) FROM cache_invalidations").fetchone()
        return int(row[0] or 0)

    async def _poll(self) -> None:
        last_sweep = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sync_interval):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self._read_feed()
                if time.monotonic() - last_sweep > _SWEEP_EVERY:
                    last_sweep = time.monotonic()
                    await self.db.run(self._sweep)
            except Exception as exc:  # the file is busy or gone: read again next round
                _log.debug("cache: reading the invalidation log failed", error=repr(exc))

    async def _read_feed(self) -> None:
        rows = await self.db.run(self._rows_since, self._seen)
        if not rows:
            return
        assert self._sink is not None
        if rows[0][0] != self._seen + 1:
            self._sink("", [])  # rows we never saw were trimmed: trust nothing local
        self._seen = rows[-1][0]
        by_origin: dict[str, list[Invalidation]] = {}
        for _, origin, kind, target in rows:
            if origin == self.origin:
                continue
            items = _pair.decode(target) if kind == "p" else [target]
            by_origin.setdefault(origin, []).append((kind, items))
        for origin, invalidations in by_origin.items():
            self._sink(origin, invalidations)

    def _rows_since(self, seq: int) -> list[tuple[int, str, str, str]]:
        return self.db.conn.execute(
            "SELECT seq, origin, kind, target FROM cache_invalidations WHERE seq > ?"
            " ORDER BY seq LIMIT 10000",
            (seq,),
        ).fetchall()

    def _sweep(self) -> None:
        now = self._clock.now_ms()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM cache_invalidations WHERE at < ?", (now - self.log_keep_ms,))
            conn.execute(
                "DELETE FROM cache_entries WHERE key IN (SELECT key FROM cache_entries"
                " WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT 1000)",
                (now,),
            )

    # -- the stampede lock -----------------------------------------------------

    def _slot(self, key: str) -> int:
        return zlib.crc32(key.encode()) % _LOCK_SLOTS

    async def try_lock(self, key: str, ttl_ms: int) -> str | None:
        slot = self._slot(key)
        if slot in self._held or self._lock_fd is None:
            return None  # held by this cache (another key on the same byte)
        if not record_lock.try_lock(self._lock_fd, slot):
            return None
        self._held[slot] = asyncio.Event()
        return str(slot)

    async def wait_unlocked(self, key: str, timeout: float) -> None:
        slot = self._slot(key)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                local = self._held.get(slot)
                if local is not None:
                    await local.wait()
                    return
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(
                    self._waiting, record_lock.wait_until_free, self._lock_path, slot
                )

    async def unlock(self, key: str, token: str) -> None:
        slot = int(token)
        event = self._held.pop(slot, None)
        if self._lock_fd is not None:
            record_lock.unlock(self._lock_fd, slot)
        if event is not None:
            event.set()


def _as_int(data: bytes) -> int:
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadInputError(f"cannot increment: {NOT_A_COUNTER}")
    return value
