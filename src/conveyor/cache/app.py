"""Building ``app.cache`` from an app's settings."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from conveyor.cache.cache import Cache
from conveyor.cache.collector import CacheCollector
from conveyor.clock import Clock
from conveyor.config import Settings


def build_cache(settings: Settings, registry: CollectorRegistry, clock: Clock) -> Cache:
    """The app's cache: on ``cache_url`` or the store's URL, its stats in ``registry``."""
    cache = Cache(
        settings.cache_url or settings.store_url,
        default_ttl=settings.cache_default_ttl,
        stale_ttl=settings.cache_stale_ttl,
        local_max_entries=settings.cache_local_max_entries,
        local_max_bytes=settings.cache_local_max_bytes,
        budget=settings.cache_budget,
        timeout=settings.store_timeout,
        clock=clock,
    )
    registry.register(CacheCollector(cache))
    return cache
