"""What every namespace of one cache shares: the tiers, the breaker, the outage logic.

Every call to the shared tier goes through :meth:`CacheCore.shared`: it is
skipped while the circuit is open, bounded by the ``budget``, and a failure
(an error or the budget running out) becomes ``FAILED`` for the caller, who
then answers from the local tier. Writes and deletes that could not reach
the shared tier are remembered and replayed once it answers again (the
circuit closes, or the invalidation feed resubscribes): the shared copy of a
key written or deleted during an outage is deleted then, so no process reads
a value older than what this one saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from conveyor.cache.breaker import CircuitBreaker
from conveyor.cache.local import LocalTier
from conveyor.cache.serializer import Serializer
from conveyor.cache.stats import NamespaceStats, SharedStats
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BadInputError
from conveyor.observability.logging import get_logger
from conveyor.stores.cache import Invalidation, SharedTier

T = TypeVar("T")


class _Failed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = _Failed()
"""What a shared call returns when the shared tier did not answer (in time)."""

_MAX_PENDING = 100_000
_log = get_logger("conveyor.cache")


def glob_regex(prefix: str, pattern: str) -> re.Pattern[str]:
    """A regex for full keys: ``prefix`` literally, then the glob ``pattern``."""
    return re.compile(re.escape(prefix) + fnmatch.translate(pattern))


class CacheCore:
    def __init__(
        self,
        shared: SharedTier | None,
        local: LocalTier,
        serializer: Serializer,
        *,
        origin: str,
        budget: float,
        lock_ttl: float,
        early_refresh_beta: float,
        bulk_budget: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.shared = shared
        self.local = local
        self.serializer = serializer
        self.origin = origin
        self.budget = budget
        self.lock_ttl = lock_ttl
        self.early_refresh_beta = early_refresh_beta
        self.bulk_budget = max(budget, bulk_budget)
        """Pattern deletes scan the whole keyspace in batches: bounded apart."""
        self.breaker = CircuitBreaker(on_close=self._schedule_replay)
        self.stats: dict[str, NamespaceStats] = {}
        self.shared_stats = SharedStats()
        self.inflight: dict[str, asyncio.Task[bytes | None]] = {}
        self.reads: dict[str, asyncio.Task[Any]] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._pending_keys: dict[str, None] = {}
        self._pending_tags: dict[str, None] = {}
        self._pending_patterns: dict[tuple[str, str], None] = {}
        self._replaying = False

    def namespace_stats(self, namespace: str) -> NamespaceStats:
        found = self.stats.get(namespace)
        if found is None:
            found = self.stats[namespace] = NamespaceStats()
        return found

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        if self._opened or self.shared is None:
            self._opened = True
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.shared.open(self.on_invalidations)
                self._opened = True

    async def ready(self) -> None:
        """Open before writing locally: the first subscription flushes the local tier."""
        if not self._opened:
            with contextlib.suppress(Exception):  # down: the write degrades, it does not fail
                await self.open()

    async def read_version(self, key: str) -> int:
        """``local.version(key)`` for a read about to ask the shared tier: opened first,
        since the first subscription flushes the local tier (and so moves the version)."""
        if not self._opened:
            await self.ready()
        return self.local.version(key)

    async def close(self) -> None:
        tasks = [*self.inflight.values(), *self.background]
        if tasks:
            # Let running computations finish briefly, then cancel what is left.
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._opened and self.shared is not None:
            await self.shared.close()
        self._opened = False

    # -- the guarded shared call -------------------------------------------------

    async def shared_call(
        self, op: Callable[[SharedTier], Awaitable[T]], *, budget: float | None = None
    ) -> T | _Failed:
        shared = self.shared
        if shared is None:
            return FAILED
        if not self._opened:
            try:
                await self.open()
            except Exception:
                self.breaker.failure()
                self.shared_stats.errors += 1
                return FAILED
        if not self.breaker.allow():
            self.shared_stats.skipped += 1
            return FAILED
        try:
            async with asyncio.timeout(budget or self.budget):
                result = await op(shared)
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except BadInputError:  # the shared tier understood and refused (not an outage)
            self.breaker.success()
            raise
        except Exception:
            self.breaker.failure()
            self.shared_stats.errors += 1
            return FAILED
        self.breaker.success()
        return result

    async def coalesced_get(self, key: str) -> bytes | _Failed | None:
        """A shared GET that concurrent callers for the same key share (one round trip).

        Used on the compute path, where a burst of misses for one key is the
        normal case; a plain ``get`` skips it (a task per call costs microseconds).
        """
        task = self.reads.get(key)
        if task is None:
            task = asyncio.ensure_future(self.shared_call(lambda s: s.get(key)))
            self.reads[key] = task
            task.add_done_callback(lambda t: self._read_done(key, t))
        return await asyncio.shield(task)

    def _read_done(self, key: str, task: asyncio.Task[Any]) -> None:
        if self.reads.get(key) is task:
            del self.reads[key]
        if not task.cancelled():
            task.exception()

    async def shared_write(
        self,
        op: Callable[[SharedTier], Awaitable[T]],
        *,
        keys: list[str] = (),  # type: ignore[assignment]
        tags: list[str] = (),  # type: ignore[assignment]
        patterns: list[tuple[str, str]] = (),  # type: ignore[assignment]
        budget: float | None = None,
    ) -> T | _Failed:
        """A write; if it fails, what it touched is invalidated once the tier is back."""
        result = await self.shared_call(op, budget=budget)
        if result is FAILED and self.shared is not None:
            self._remember(keys, tags, patterns)
        return result

    def _remember(self, keys: list[str], tags: list[str], patterns: list[tuple[str, str]]) -> None:
        total = len(self._pending_keys) + len(self._pending_tags) + len(self._pending_patterns)
        if total > _MAX_PENDING:
            _log.warning("cache: too many invalidations waiting for the shared tier; dropping")
            return
        self._pending_keys.update(dict.fromkeys(keys))
        self._pending_tags.update(dict.fromkeys(tags))
        self._pending_patterns.update(dict.fromkeys(patterns))

    @property
    def pending_invalidations(self) -> int:
        return len(self._pending_keys) + len(self._pending_tags) + len(self._pending_patterns)

    def _schedule_replay(self) -> None:
        if self._replaying or not self.pending_invalidations:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the next call replays
            self.spawn(self._replay())

    async def _replay(self) -> None:
        self._replaying = True
        try:
            keys, tags = list(self._pending_keys), list(self._pending_tags)
            patterns = list(self._pending_patterns)
            self._pending_keys.clear()
            self._pending_tags.clear()
            self._pending_patterns.clear()
            failed = False
            if keys and await self.shared_call(lambda s: s.delete(keys)) is FAILED:
                failed = True
            if tags and await self.shared_call(lambda s: s.invalidate_tags(tags)) is FAILED:
                failed = True
            for prefix, pattern in patterns:
                op = self._delete_matching(prefix, pattern)
                if await self.shared_call(op, budget=self.bulk_budget) is FAILED:
                    failed = True
            if failed:
                self._remember(keys, tags, patterns)
            else:
                self.shared_stats.replayed_invalidations += len(keys) + len(tags) + len(patterns)
        finally:
            self._replaying = False

    @staticmethod
    def _delete_matching(prefix: str, pattern: str) -> Callable[[SharedTier], Awaitable[int]]:
        return lambda s: s.delete_matching(prefix, pattern, 500)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("cache: background task failed", error=repr(task.exception()))

    # -- what other processes changed ---------------------------------------------

    def on_invalidations(self, origin: str, invalidations: list[Invalidation]) -> None:
        if not origin and not invalidations:
            # The feed was interrupted (reconnect): we may have missed anything.
            self.local.clear()
            self._schedule_replay()
            return
        for kind, items in invalidations:
            if kind == "k":
                self.local.delete_many(items)
            elif kind == "p":
                for i in range(0, len(items) - 1, 2):
                    self.local.delete_matching(glob_regex(items[i], items[i + 1]))
            elif kind == "c":
                self.local.clear()


def new_origin() -> str:
    """An id for one cache instance (its own invalidation messages are ignored)."""
    return f"{int(time.time())}-{secrets.token_hex(6)}"
