"""What the service's parts share while it runs: the app, its options, and whether it drains."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conveyor.app import Conveyor
from conveyor.web.options import ServiceOptions
from conveyor.web.ratelimit.checks import ServiceRateLimits

PROBE_PATHS = frozenset(
    {"/livez", "/live", "/readyz", "/ready", "/health", "/health/detailed", "/metrics"}
)
"""Kept out of the access log and the HTTP metrics unless the options say otherwise."""


@dataclass(slots=True)
class ServiceState:
    """The running service (``web_app.state.conveyor``)."""

    app: Conveyor
    options: ServiceOptions
    draining: bool = False
    """Set at the first shutdown signal: readiness fails from then on."""
    started_at: float = field(default_factory=time.monotonic)
    rate_limits: ServiceRateLimits = field(init=False)
    """The service's rate limits over HTTP (the middleware's and the routes' checks)."""

    def __post_init__(self) -> None:
        self.rate_limits = ServiceRateLimits(self.app, self.options.rate_limits)

    def begin_drain(self) -> None:
        self.draining = True
