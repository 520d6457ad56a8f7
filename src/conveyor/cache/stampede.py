"""One computation per key, across coroutines and across processes.

Within a process, concurrent misses for a key share one task (kept in
``core.inflight``); the task is not any caller's, so a caller that gives up
(cancelled, or served stale at its soft timeout) does not stop it. Across
processes the task first takes the shared tier's lock for the key (Redis:
``SET NX PX`` plus a pub/sub wake-up; SQLite: an OS record lock). A process
that finds the lock taken waits to be woken (no polling), then reads the
value the holder stored. If the holder failed, the waiters race for the lock
again and one of them computes. With the shared tier unreachable the lock is
skipped: each process computes for itself, which is all an outage allows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.cache.core import FAILED, CacheCore
from conveyor.cache.serializer import open_envelope
from conveyor.cache.stats import NamespaceStats
from conveyor.errors import CacheTimeoutError
from conveyor.stores.cache import SharedTier

Factory = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Recipe:
    """How to compute and store one key."""

    key: str
    factory: Factory
    ttl: float | None
    stale_ttl: float
    tags: Sequence[str]
    hard_timeout: float | None
    stats: NamespaceStats


def is_fresh(data: bytes, now_ms: int) -> bool:
    envelope = open_envelope(data)
    return envelope.fresh_until == 0 or envelope.fresh_until > now_ms


def computation(
    core: CacheCore, recipe: Recipe, *, wait: bool = True
) -> asyncio.Task[bytes | None]:
    """The task computing ``recipe.key`` in this process (started if there is none).

    With ``wait=False`` (an early refresh) the task gives up, returning None, when
    another process holds the key's lock; a caller that joined it computes then."""
    found = core.inflight.get(recipe.key)
    if found is not None and not found.done():
        return found
    task: asyncio.Task[Any] = asyncio.ensure_future(_produce(core, recipe, wait))
    core.inflight[recipe.key] = task
    task.add_done_callback(lambda t: _finished(core, recipe.key, t))
    return task


def _finished(core: CacheCore, key: str, task: asyncio.Task[Any]) -> None:
    if core.inflight.get(key) is task:
        del core.inflight[key]
    if not task.cancelled():
        task.exception()  # retrieved: callers that still wait get it through shield()


async def _produce(core: CacheCore, recipe: Recipe, wait: bool) -> bytes | None:
    """The stored bytes of a fresh value (None: early refresh found the lock taken)."""
    key = recipe.key
    lock_ms = int(core.lock_ttl * 1000)
    while True:
        token = await core.shared_call(lambda s: s.try_lock(key, lock_ms))
        if token is FAILED:  # no shared tier (or unreachable): compute here
            return await _compute_and_store(core, recipe)
        if token is None:
            if not wait:
                return None
            shared = core.shared
            assert shared is not None
            await shared.wait_unlocked(key, core.lock_ttl)
            version = await core.read_version(key)
            data = await core.shared_call(lambda s: s.get(key))
            if isinstance(data, bytes) and is_fresh(data, core.clock.now_ms()):
                core.local.fill(key, data, version, recipe.tags)
                return data
            continue
        held: str = token  # type: ignore[assignment]
        unlock = _unlocker(key, held)
        try:
            version = await core.read_version(key)
            data = await core.shared_call(lambda s: s.get(key))
            if (
                wait and isinstance(data, bytes) and is_fresh(data, core.clock.now_ms())
            ):  # finished just before
                core.local.fill(key, data, version, recipe.tags)
                return data
            return await _compute_and_store(core, recipe)
        finally:
            await core.shared_call(unlock)


def _unlocker(key: str, token: str) -> Callable[[SharedTier], Awaitable[None]]:
    return lambda s: s.unlock(key, token)


async def _compute_and_store(core: CacheCore, recipe: Recipe) -> bytes:
    """Compute the value and store it, unless this process wrote, deleted or
    invalidated the key (or one of its tags) while the factory ran: the value was
    computed from what was there before, and storing it would undo the newer write
    until its TTL. The callers still get it."""
    await core.ready()
    version = core.local.computing_version(recipe.key, recipe.tags)
    started = time.perf_counter()
    try:
        if recipe.hard_timeout is None:
            value = await recipe.factory()
        else:
            async with asyncio.timeout(recipe.hard_timeout):
                value = await recipe.factory()
    except TimeoutError as exc:
        if recipe.hard_timeout is not None and time.perf_counter() - started >= recipe.hard_timeout:
            raise CacheTimeoutError(recipe.key, recipe.hard_timeout) from exc
        raise
    compute_ms = int((time.perf_counter() - started) * 1000)
    recipe.stats.computations += 1
    data, expires_at = encode_entry(core, value, recipe.ttl, recipe.stale_ttl, compute_ms)
    if core.local.computing_version(recipe.key, recipe.tags) != version:
        return data
    await store(core, recipe.key, data, expires_at, recipe.tags)
    recipe.stats.sets += 1
    return data


def encode_entry(
    core: CacheCore, value: Any, ttl: float | None, stale_ttl: float, compute_ms: int = 0
) -> tuple[bytes, int | None]:
    """The stored bytes of ``value`` and their absolute expiry (ms, None: never)."""
    if ttl is None:
        return core.serializer.dumps(value, compute_ms=compute_ms), None
    now = core.clock.now_ms()
    fresh_until = now + int(ttl * 1000)
    expires_at = fresh_until + int(stale_ttl * 1000)
    data = core.serializer.dumps(
        value, fresh_until=fresh_until, expires_at=expires_at, compute_ms=compute_ms
    )
    return data, expires_at


async def store(
    core: CacheCore, key: str, data: bytes, expires_at: int | None, tags: Sequence[str]
) -> None:
    """Write through: the local tier now, the shared tier (and other processes) next."""
    await core.ready()
    core.local.put(key, data, tags=tags)
    tag_list = list(tags)
    await core.shared_write(lambda s: s.set_many([(key, data, expires_at)], tag_list), keys=[key])
