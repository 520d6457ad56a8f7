"""Settings: validated once, at construction, with every problem listed at once.

Values come from keyword arguments to ``Conveyor(...)`` first, then from
``CONVEYOR_*`` environment variables, then from the defaults below.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.errors import ConfigError
from conveyor.masking import mask_url
from conveyor.stores.registry import url_problems

DEFAULT_SQLITE_PATH = Path(".conveyor") / "conveyor.db"
MAX_CONCURRENCY = 10_000
"""The most jobs one worker may run at once."""

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "MAX_CONCURRENCY",
    "RatePolicySettings",
    "Settings",
    "load_settings",
    "mask_url",
]


class RatePolicySettings(BaseModel):
    """One rate-limit policy in settings: ``rate`` for every tier, or ``tiers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: str | None = None
    """``"20/minute"``: one rate for every tier."""
    tiers: dict[str, str | int] = Field(default_factory=dict)
    """Tier -> rate, lowest tier first (an int: slots of a concurrency policy)."""
    algorithm: Literal["gcra", "sliding-window", "fixed-window", "concurrency"] = "gcra"
    burst: int | None = None
    lease: float = 60.0
    """Concurrency policies: seconds a slot is held unless released first."""


class Settings(BaseSettings):
    """Every knob conveyor reads. Durations are seconds, sizes are bytes."""

    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_", extra="forbid", validate_default=True, frozen=True
    )

    url: str | None = Field(default=None, repr=False)
    """Store URL: None (embedded SQLite), ``memory://``, ``sqlite:///path``."""

    lease_seconds: float = Field(default=30.0, gt=0, le=86_400)
    """How long a claim holds a job before it counts as stalled; renewed at a third of it."""
    sweep_interval: float = Field(default=5.0, gt=0, le=3_600)
    """How often a worker looks for stalled jobs and expired finished jobs."""
    max_stalled: int = Field(default=1, ge=0, le=1_000)
    """Stalls a job survives; one more fails it."""
    max_payload_bytes: int = Field(default=1_048_576, ge=64)
    """Limit on an encoded payload, result, progress value or log line."""
    poll_interval: float = Field(default=0.05, gt=0, le=10)
    """Longest an idle worker waits before looking for jobs again (no push from the store)."""
    concurrency: int = Field(default=10, ge=1, le=MAX_CONCURRENCY)
    """Jobs a worker runs at once (``app.work(concurrency=...)`` overrides it)."""
    claim_batch: int = Field(default=50, ge=1, le=1_000)
    sync_threads: int = Field(default=8, ge=1, le=1_000)
    """Threads that run sync task functions."""
    shutdown_timeout: float = Field(default=30.0, ge=0)
    """How long running jobs may take to finish after a stop is asked for."""
    progress_flush_interval: float = Field(default=0.2, gt=0, le=60)

    keep_completed: int = Field(default=1_000, ge=0)
    """Completed jobs kept per queue (newest first)."""
    keep_completed_seconds: float = Field(default=86_400.0, ge=0)
    keep_failed: int = Field(default=10_000, ge=0)
    keep_failed_seconds: float = Field(default=7 * 86_400.0, ge=0)
    max_log_lines: int = Field(default=1_000, ge=1)
    """Log lines kept per job (the newest)."""

    history_flush_seconds: float = Field(default=10.0, gt=0, le=60)
    """How often a process adds its counts to the metrics history (one store call)."""
    history_days: float = Field(default=7.0, gt=0, le=366)
    """Minutes of metrics history older than this are dropped by the sweep."""
    audit_keep: int = Field(default=10_000, ge=1)
    """Audit entries kept (the newest)."""
    audit_days: float = Field(default=90.0, gt=0)
    """Audit entries older than this are dropped when the next one is written."""

    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL survives a killed process; FULL also survives power loss, slower."""
    store_timeout: float = Field(default=5.0, gt=0, le=600)

    event_source: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)
    """The ``source`` stamped on published events (default: this host's name)."""
    event_route_ttl: float = Field(default=2.0, ge=0, le=3_600)
    """How long a publisher trusts its copy of which groups subscribe to which event types."""
    event_dead_letters: int = Field(default=100_000, ge=0)
    """Dead letters kept per subscriber group (newest first)."""
    event_dead_letters_seconds: float = Field(default=30 * 86_400.0, ge=0)
    cache_url: str | None = Field(default=None, repr=False)
    """The cache's shared tier if not the store's URL (``memory://``: the local tier alone)."""
    cache_default_ttl: float | None = Field(default=300.0, gt=0)
    cache_stale_ttl: float = Field(default=0.0, ge=0)
    cache_local_max_entries: int = Field(default=10_000, ge=0)
    cache_local_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    cache_budget: float | None = Field(default=None, gt=0, le=60)
    """Longest a cache call waits on the shared tier (None: 50 ms on Redis, 2 s on SQLite)."""

    rate_limits: dict[str, str | RatePolicySettings] = Field(default_factory=dict)
    """Rate-limit policies by name: ``{"login": "5/minute", "api": {"tiers": {"free":
    "20/minute", "pro": "100/minute"}}}`` (``CONVEYOR_RATE_LIMITS`` as JSON)."""
    rate_limit_tiers: list[str] = Field(default_factory=list)
    """Tier names, lowest first (default: in the order the policies name them)."""
    rate_limit_failure: Literal["open", "closed"] = "open"
    """When the shared store cannot answer: decide in this process ("open") or refuse."""
    rate_limit_budget: float | None = Field(default=None, gt=0, le=60)
    """Longest a check waits on the shared store (None: 50 ms on Redis, 1 s on SQLite)."""
    rate_limit_local_keys: int = Field(default=100_000, ge=100)
    """Keys this process's own rate-limit table holds at most (local limits, fallback)."""
    rate_limit_legacy_headers: bool = False
    """Also send ``X-RateLimit-Tier``, ``-Limit``, ``-Window``, ``-Remaining`` and ``-Reset``
    on rate-limited HTTP routes (the IETF ``RateLimit``/``RateLimit-Policy`` always)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or CIDR networks of the proxies in front of the HTTP service: only a
    request from one of them may say who the client is (``CONVEYOR_TRUSTED_PROXIES`` as
    JSON: ``'["10.0.0.0/8"]'``)."""
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded", "x-real-ip"] = "x-forwarded-for"
    """The one header those proxies set (the others are ignored)."""

    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    configure_logging: bool = True
    """Configure structlog at start unless the application already did."""

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in type(self).model_fields
            if name not in ("url", "cache_url")
        )
        return f"Settings(url={self.masked_url!r}, {fields})"

    __str__ = __repr__

    @property
    def store_url(self) -> str:
        return self.url or f"sqlite:///{DEFAULT_SQLITE_PATH}"

    @property
    def masked_url(self) -> str:
        return mask_url(self.store_url)


def _store_url_problems(url: str) -> list[str]:
    return [f"url: {problem}" for problem in url_problems(url)]


def _cross_field_problems(s: Settings) -> list[str]:
    problems = _store_url_problems(s.store_url)
    if s.cache_url is not None:
        problems += [p.replace("url:", "cache_url:", 1) for p in _store_url_problems(s.cache_url)]
    if s.sweep_interval > s.lease_seconds:
        problems.append(
            f"sweep_interval ({s.sweep_interval}s) must not exceed"
            f" lease_seconds ({s.lease_seconds}s)"
        )
    return problems


SettingsCheck = Callable[["Settings"], list[str]]
"""A component's own check of settings (the rate limits'): the problems it finds."""


def load_settings(
    url: str | None, overrides: dict[str, Any], checks: Sequence[SettingsCheck] = ()
) -> Settings:
    """Build settings or raise one ``ConfigError`` that lists every problem, those of
    ``checks`` (the components above this module that validate their own settings) too."""
    values = dict(overrides)
    if url is not None:
        values["url"] = url
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{where}: {err['msg']}")
        raw_url = values.get("url")
        if isinstance(raw_url, str):
            problems.extend(_store_url_problems(raw_url))
        raise ConfigError(problems) from None
    problems = _cross_field_problems(settings)
    for check in checks:
        problems += check(settings)
    if problems:
        raise ConfigError(problems)
    return settings
