"""Which backend serves a URL: one line per backend, nothing else names one.

Backends are imported only when a URL asks for them, so an app on SQLite
never loads redis-py.

>>> backend_type("redis+cluster://node1:7000")  # doctest: +SKIP
<class 'conveyor.stores.redis.backend.RedisBackend'>
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import ConfigError
from conveyor.masking import mask_url

if TYPE_CHECKING:
    from conveyor.stores.backend import Backend, BackendSettings, BackendType

BACKENDS: dict[str, tuple[str, ...]] = {
    "conveyor.stores.memory.backend:MemoryBackend": ("memory",),
    "conveyor.stores.sqlite.backend:SqliteBackend": ("sqlite",),
    "conveyor.stores.redis.backend:RedisBackend": (
        "redis",
        "rediss",
        "redis+cluster",
        "rediss+cluster",
    ),
    "conveyor.stores.postgres.backend:PostgresBackend": (
        "postgresql",
        "postgres",
        "postgresql+asyncpg",
        "postgresql+psycopg",
    ),
}
"""Backend class (``module:Class``) -> the URL schemes it serves."""

_BY_SCHEME = {scheme: path for path, schemes in BACKENDS.items() for scheme in schemes}


def schemes() -> list[str]:
    """Every URL scheme some backend serves."""
    return sorted(_BY_SCHEME)


def url_problems(url: str) -> list[str]:
    """What is wrong with a store URL (empty when a backend serves it as written)."""
    scheme = urlsplit(url).scheme
    path = _BY_SCHEME.get(scheme)
    if path is None:
        known = ", ".join(schemes())
        return [f"unknown store scheme {scheme!r} in {mask_url(url)!r}; use one of {known}"]
    return _load(path).url_problems(url)


def backend_type(url: str) -> BackendType:
    """The backend class for ``url``; ``ConfigError`` for a URL none serves."""
    problems = url_problems(url)
    if problems:
        raise ConfigError([f"url: {problem}" for problem in problems])
    return _load(_BY_SCHEME[urlsplit(url).scheme])


def _load(path: str) -> BackendType:
    module, _, name = path.partition(":")
    return cast("BackendType", getattr(importlib.import_module(module), name))


def make_backend(url: str, settings: BackendSettings, clock: Clock = SYSTEM_CLOCK) -> Backend:
    """The backend serving ``url``, with every store built (not yet opened)."""
    return backend_type(url)(url, settings, clock)
