"""Stores: where jobs (and later cache entries and events) live."""

from __future__ import annotations

from urllib.parse import urlsplit

from conveyor.config import Settings
from conveyor.errors import ConfigError
from conveyor.stores.base import JobStore


def make_job_store(settings: Settings) -> JobStore:
    """The job store for ``settings.store_url`` (not yet opened)."""
    url = settings.store_url
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from conveyor.stores.memory.jobs import MemoryJobStore

        return MemoryJobStore(url)
    if scheme == "sqlite":
        from conveyor.stores.sqlite.jobs import SqliteJobStore

        return SqliteJobStore(
            url, synchronous=settings.sqlite_synchronous, timeout=settings.store_timeout
        )
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from conveyor.stores.redis.jobs import RedisJobStore

        return RedisJobStore(url, timeout=settings.store_timeout)
    raise ConfigError([f"url: the {scheme}:// store is not available in this version"])
