"""ServiceOptions: what ``as_service`` can be told, validated with every problem listed."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import BaseSettings

from conveyor.errors import ConfigError
from conveyor.web.admin.options import AdminOptions
from conveyor.web.ratelimit.options import RateLimitOptions

_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True, kw_only=True)
class ServiceOptions:
    """Options of :func:`conveyor.as_service`; every one has a default.

    >>> ServiceOptions(request_timeout=10, docs=False)

    A bad value raises one ``ConfigError`` that lists every problem.
    """

    title: str = "conveyor service"
    """Shown in the OpenAPI document and in ``/health`` (``serviceId``)."""
    version: str = "0.1.0"
    """The service's own version (OpenAPI, ``/health``)."""
    environment: str = "production"
    """Reported by ``/health`` (e.g. ``staging``)."""
    run_workers: bool = False
    """Run conveyor workers inside the server process (``conveyor serve`` turns them on
    unless ``--no-worker``)."""
    worker_queues: tuple[str, ...] | None = None
    """Queues the in-process worker takes (default: those of the app's tasks)."""
    worker_concurrency: int | None = None
    request_timeout: float | None = 30.0
    """Seconds a request may take to start its response before it is answered 504
    (None: no limit). A route may set its own with ``@request_timeout(seconds)``."""
    gzip_minimum_size: int = 1024
    """Responses at least this large are gzipped (if the client accepts gzip)."""
    gzip_level: int = 6
    docs: bool = True
    """Swagger UI at ``/docs`` (FastAPI apps)."""
    access_log: bool = True
    """One log line per request."""
    log_probes: bool = False
    """Also log ``/livez``, ``/readyz``, ``/health``, ``/metrics`` and their aliases."""
    measure_probes: bool = False
    """Also count those paths in the HTTP metrics."""
    health_check_timeout: float = 2.0
    """Seconds each readiness check may take before it counts as failed."""
    health_cache_seconds: float = 1.0
    """How long a readiness report is reused (probes from many sources cost one round)."""
    request_id_header: str = "X-Request-ID"
    rate_limits: RateLimitOptions = field(default_factory=RateLimitOptions)
    """Which policies every request is checked against, who a request is from and its
    tier, and what a 429 says (see ``docs/service.md``, Rate limits)."""
    admin: AdminOptions = field(default_factory=AdminOptions)
    """The management API (``/api/v1``) and the dashboard (``/dashboard``): prefixes, keys
    and roles, trusted proxies (see ``docs/dashboard.md``); ``AdminOptions(enabled=False)``
    leaves both out."""
    settings: type[BaseSettings] | Callable[[], Any] | None = field(default=None, repr=False)
    """The application's own settings class (e.g. a pydantic ``BaseSettings``): built first
    thing at startup, so a bad configuration stops the service with every problem listed.
    The instance is ``web_app.state.settings``."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def problems(self) -> list[str]:
        """Everything wrong with these options (empty when they are valid)."""
        found = []
        if self.request_timeout is not None and not _positive(self.request_timeout):
            found.append(
                f"request_timeout must be > 0 seconds or None, got {self.request_timeout!r}"
            )
        if not _positive(self.health_check_timeout):
            found.append(
                f"health_check_timeout must be > 0 seconds, got {self.health_check_timeout!r}"
            )
        if not (_positive(self.health_cache_seconds) or self.health_cache_seconds == 0):
            found.append(f"health_cache_seconds must be >= 0, got {self.health_cache_seconds!r}")
        if not (isinstance(self.gzip_minimum_size, int) and self.gzip_minimum_size >= 0):
            found.append(
                f"gzip_minimum_size must be an integer >= 0, got {self.gzip_minimum_size!r}"
            )
        if self.gzip_level not in range(1, 10):
            found.append(f"gzip_level must be 1..9, got {self.gzip_level!r}")
        if self.worker_concurrency is not None and not (
            isinstance(self.worker_concurrency, int) and self.worker_concurrency >= 1
        ):
            found.append(f"worker_concurrency must be >= 1, got {self.worker_concurrency!r}")
        if self.worker_queues is not None and not all(
            isinstance(q, str) and q for q in self.worker_queues
        ):
            found.append("worker_queues must be non-empty strings")
        if not (
            isinstance(self.request_id_header, str)
            and _HEADER_NAME.fullmatch(self.request_id_header)
        ):
            found.append(f"request_id_header is not a header name: {self.request_id_header!r}")
        for name in ("title", "version", "environment"):
            if not (isinstance(getattr(self, name), str) and getattr(self, name)):
                found.append(f"{name} must be a non-empty string")
        rate_limits: object = self.rate_limits
        if isinstance(rate_limits, RateLimitOptions):
            found += [f"rate_limits.{problem}" for problem in rate_limits.problems()]
        else:
            found.append("rate_limits must be a RateLimitOptions")
        admin: object = self.admin
        if not isinstance(admin, AdminOptions):
            found.append("admin must be an AdminOptions")
        settings: object = self.settings
        if settings is not None and not callable(settings):
            found.append("settings must be a class or a callable that builds the settings")
        return found


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
