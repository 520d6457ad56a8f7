"""Cache options: TTL presets and how a cache is built from a URL."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from conveyor.errors import ConfigError, ProgrammingError

DEFAULT_PRESETS: Final = {
    "SHORT": 60.0,
    "MEDIUM": 300.0,
    "LONG": 1800.0,
    "HOUR": 3600.0,
    "DAY": 86_400.0,
}

TTL = float | int | str | timedelta | None
"""Seconds, a ``timedelta``, a preset name (``"SHORT"``, ``"day"``...) or None (never)."""


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
MISSING: Final[Any] = object()
"""A miss, where None could be a cached value."""


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """Every knob of a cache; ``Cache(url, **options)`` and the app's ``cache_*`` settings."""

    default_ttl: float | None = 300.0
    stale_ttl: float = 0.0
    """How long past its TTL a value may still be served stale (and refreshed behind)."""
    local_max_entries: int = 10_000
    local_max_bytes: int = 64 * 1024 * 1024
    budget: float | None = None
    """Longest a call waits on the shared tier (None: the tier's own default, 50 ms on
    Redis, 250 ms on PostgreSQL, 2 s on SQLite)."""
    lock_ttl: float = 30.0
    """Longest a computation holds the stampede lock (and others wait for it)."""
    early_refresh_beta: float = 1.0
    """XFetch's beta: larger refreshes earlier; 0 turns early refresh off."""
    compress_threshold: int | None = 4096
    max_value_bytes: int | None = None
    prefix: str = "cv:cache:"
    sync_interval: float = 0.05
    """SQLite: how often a process reads what others invalidated (its staleness bound)."""
    timeout: float = 5.0
    """Socket/busy timeout of the shared tier's connections."""
    presets: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRESETS))


def validate(options: CacheOptions) -> None:
    problems = []
    if options.local_max_entries < 0 or options.local_max_bytes < 0:
        problems.append("local_max_entries and local_max_bytes must be >= 0")
    if options.budget is not None and options.budget <= 0:
        problems.append("budget must be > 0 seconds")
    if options.lock_ttl <= 0:
        problems.append("lock_ttl must be > 0 seconds")
    if options.stale_ttl < 0:
        problems.append("stale_ttl must be >= 0 seconds")
    if options.early_refresh_beta < 0:
        problems.append("early_refresh_beta must be >= 0")
    if problems:
        raise ConfigError([f"cache: {p}" for p in problems])


def resolve_ttl(
    ttl: TTL | _Default, default: float | None, presets: Mapping[str, float]
) -> float | None:
    """Seconds (or None for no expiry) from any accepted TTL form."""
    if isinstance(ttl, _Default):
        return default
    if ttl is None:
        return None
    if isinstance(ttl, str):
        found = presets.get(ttl.upper())
        if found is None:
            known = ", ".join(sorted(presets))
            raise ProgrammingError(f"unknown TTL preset {ttl!r}; known: {known}")
        return found
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0 or math.isinf(seconds):
        raise ProgrammingError(f"a TTL must be > 0 seconds (or None), got {ttl!r}")
    return seconds
