"""The protocol of a shared cache tier (SQLite file, Redis, Redis Cluster).

A shared tier stores the serializer's bytes under full keys (prefix and
namespace included), keeps tag sets, tells other processes what changed
(``invalidations``), and gives the stampede guard a cross-process lock whose
waiters are woken, not polling. Expiry times are absolute wall-clock
milliseconds (``None``: never).

Every method may raise any exception on trouble; the cache maps that to a
circuit-breaker failure and answers from its local tier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Protocol

import msgspec

NOT_A_COUNTER: Final = "the value is not a counter (an integer written by incr or decr)"
"""Why ``incr`` refuses a value (tiers raise ``BadInputError`` with it)."""

Invalidation = tuple[str, list[str]]
"""``("k", keys)`` changed, ``("p", [prefix, glob, ...])`` patterns, ``("u", keys)`` unlocked."""

InvalidationSink = Callable[[str, list[Invalidation]], None]
"""Called with (origin, invalidations) for each batch another process published; origin
``""`` with an empty list means "the feed was interrupted: drop everything local"."""


class TierOptions(msgspec.Struct, frozen=True):
    """What a shared tier is built with (decided by the cache's options)."""

    prefix: str = "cv:cache:"
    """Redis: the prefix of every key the tier writes."""
    timeout: float = 5.0
    """Seconds a connection or call may take before it counts as failed."""
    sync_interval: float = 0.05
    """SQLite: how often a process reads the invalidation log of the others."""


class SharedTier(Protocol):
    """Implemented by ``stores/{sqlite,redis,postgres}/cache.py``."""

    url: str
    default_budget: float
    """Seconds a cache call waits on this tier unless the cache's ``budget`` says
    otherwise: what one call takes at worst when the server is healthy but busy."""

    async def open(self, sink: InvalidationSink) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def get(self, key: str) -> bytes | None: ...
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tags: Sequence[str]
    ) -> None:
        """Store (key, data, expires_at_ms) items, add them to ``tags``, tell other processes."""
        ...

    async def delete(self, keys: Sequence[str]) -> int: ...
    async def exists(self, key: str) -> bool: ...
    async def incr(self, key: str, by: int) -> int:
        """Add ``by`` to a counter (0 when missing); ``BadInputError`` for a non-counter."""
        ...

    async def expire(self, key: str, expires_at: int | None) -> bool: ...
    async def ttl_ms(self, key: str) -> int | None:
        """Milliseconds left; -1 for a key without expiry; None for no key."""
        ...

    async def invalidate_tags(self, tags: Sequence[str]) -> list[str]:
        """Delete every key of ``tags`` (and the tag sets); returns the keys deleted."""
        ...

    async def delete_matching(self, prefix: str, pattern: str, batch: int) -> int:
        """Delete keys of ``prefix`` (literal) + glob ``pattern``, in batches (SCAN, never KEYS)."""
        ...

    async def publish(self, origin: str, invalidations: Sequence[Invalidation]) -> None: ...

    async def try_lock(self, key: str, ttl_ms: int) -> str | None:
        """A token if this caller now holds the computation lock of ``key``."""
        ...

    async def wait_unlocked(self, key: str, timeout: float) -> None:
        """Return when the holder of ``key``'s lock let go (or ``timeout``): no polling."""
        ...

    async def unlock(self, key: str, token: str) -> None: ...
