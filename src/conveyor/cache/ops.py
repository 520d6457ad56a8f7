"""What the decorators need of a cache namespace (``Cache`` is one)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from conveyor.cache.options import TTL, _Default


class CacheOps(Protocol):
    """The reads and writes of one namespace that ``@cached``, ``@evict``, ``@put`` and the
    HTTP response cache are built on."""

    def full_key(self, key: str) -> str: ...

    async def get(
        self, key: str, default: Any = None, *, type: Any = None, allow_stale: bool = False
    ) -> Any: ...

    async def set(
        self,
        key: str,
        value: Any,
        ttl: TTL | _Default = ...,
        *,
        tags: Iterable[str] = (),
        stale_ttl: float | None = None,
    ) -> None: ...

    async def delete(self, *keys: str) -> int: ...

    async def invalidate_tags(self, *tags: str) -> int: ...
