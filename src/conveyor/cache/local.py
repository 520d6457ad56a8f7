"""The in-process tier: an LRU bounded by entries and by bytes, with per-key expiry.

Entries hold the stored bytes (not the decoded object), so every hit decodes
a fresh copy: a caller that mutates what it got cannot change what the next
caller sees, and the byte bound is exact. Decoding a small value costs well
under a microsecond with msgspec.

Times are wall-clock seconds (the cache's clock) because freshness comes from
the shared store's header, written by other processes.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable

from conveyor.cache.serializer import open_envelope
from conveyor.clock import SYSTEM_CLOCK, Clock

_OVERHEAD = 120  # rough bytes of bookkeeping per entry (dict slot, entry object, key)
NEVER = math.inf
_SLOTS = 4096  # write counters, one per hash slot of the key (bounded, per-key enough)


class LocalEntry:
    """One cached value in this process."""

    __slots__ = ("body", "compute_ms", "data", "expires_at", "fresh_until", "size", "tags")

    def __init__(self, data: bytes, expires_at: float, tags: tuple[str, ...], key: str) -> None:
        envelope = open_envelope(data)
        if envelope.expires_at:
            expires_at = min(expires_at, envelope.expires_at / 1000)
        self.data = data
        self.body = envelope.body
        self.fresh_until = envelope.fresh_until / 1000 if envelope.fresh_until else NEVER
        self.compute_ms = envelope.compute_ms
        self.expires_at = expires_at
        self.tags = tags
        self.size = len(data) + len(key) + _OVERHEAD


class LocalTier:
    """``max_entries`` and ``max_bytes`` bound it; the least recently used goes first."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[str, LocalEntry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._writes = [0] * _SLOTS
        self._tag_writes = [0] * _SLOTS
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def get(self, key: str) -> LocalEntry | None:
        """The live entry for ``key`` (fresh or stale), or None; a hit becomes most recent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock.now_ms() / 1000:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def version(self, key: str) -> int:
        """Changes whenever ``key`` is written or dropped here (or the tier is cleared).

        A read of the shared tier takes it before asking and fills the local tier
        only if it did not change meanwhile (:meth:`fill`): a write or an
        invalidation that landed during the round trip must not be undone by the
        older value the read brings back. Both counters only grow, so their sum
        is unchanged exactly when neither moved.
        """
        return self._epoch + self._writes[hash(key) % _SLOTS]

    def computing_version(self, key: str, tags: Iterable[str]) -> int:
        """:meth:`version` that also moves when one of ``tags`` is invalidated here.

        A computation takes it before calling its factory and stores the value only
        if it did not move: a write, a delete or a tag invalidation that landed while
        the factory ran (the key not yet cached, so no entry to drop) must not be
        undone by the older value the factory computed.
        """
        tag_writes = self._tag_writes
        return self.version(key) + sum(tag_writes[hash(tag) % _SLOTS] for tag in tags)

    def invalidated_tags(self, tags: Iterable[str]) -> None:
        """Record that ``tags`` were invalidated (see :meth:`computing_version`)."""
        for tag in tags:
            self._tag_writes[hash(tag) % _SLOTS] += 1

    def fill(self, key: str, data: bytes, version: int, tags: Iterable[str] = ()) -> bool:
        """Put what a read of the shared tier found, unless ``key`` changed since
        ``version`` was taken (then the read's value may be older than what we saw)."""
        if self.version(key) != version:
            return False
        self._put(key, data, NEVER, tags)
        return True

    def put(
        self, key: str, data: bytes, expires_at: float = NEVER, tags: Iterable[str] = ()
    ) -> None:
        self._writes[hash(key) % _SLOTS] += 1
        self._put(key, data, expires_at, tags)

    def _put(self, key: str, data: bytes, expires_at: float, tags: Iterable[str]) -> None:
        if not self.enabled:
            return
        entry = LocalEntry(data, expires_at, tuple(tags), key)
        if entry.size > self.max_bytes:
            self._remove(key)
            return
        self._remove(key)
        self._entries[key] = entry
        self.bytes += entry.size
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        self._evict()

    def set_expiry(self, key: str, expires_at: float) -> bool:
        entry = self.get(key)
        if entry is None:
            return False
        entry.expires_at = expires_at
        return True

    def delete(self, key: str) -> bool:
        self._writes[hash(key) % _SLOTS] += 1
        return self._remove(key)

    def delete_many(self, keys: Iterable[str]) -> int:
        writes = self._writes
        removed = 0
        for key in keys:
            writes[hash(key) % _SLOTS] += 1
            removed += self._remove(key)
        return removed

    def delete_matching(self, pattern: re.Pattern[str]) -> list[str]:
        self._epoch += 1
        doomed = [key for key in self._entries if pattern.fullmatch(key)]
        for key in doomed:
            self._remove(key)
        return doomed

    def keys_tagged(self, tags: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for tag in tags:
            found |= self._tags.get(tag, set())
        return found

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._tags.clear()
        self.bytes = 0

    def purge_expired(self) -> int:
        now = self._clock.now_ms() / 1000
        doomed = [key for key, entry in self._entries.items() if entry.expires_at <= now]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.bytes -= entry.size
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return True

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.evictions += 1
