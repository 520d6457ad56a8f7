"""What every product module of the service shares: settings, conveyor, database, metrics.

``backbone`` is the conveyor app: jobs, schedules, the cache, the event bus,
rate limits, metrics and health, on the store ``CONVEYOR_URL`` names (the
embedded SQLite file ``.conveyor/conveyor.db`` by default, Redis by URL).
The products import from here; ``main.py`` imports the products and builds
the HTTP service.
"""

from __future__ import annotations

from conveyor import Conveyor, RatePolicy

from .database import Database
from .metrics import ServiceMetrics
from .settings import load_settings

settings = load_settings()
# The products' clients read the X-RateLimit-* family beside the IETF fields.
backbone = Conveyor(event_source="reference-service", rate_limit_legacy_headers=True)
database = Database(settings.database_url)
metrics = ServiceMetrics(backbone.metrics.registry)
backbone.health.add_check("database", database.check_health)

TIERS = ("free", "pro", "enterprise")
"""The plans, lowest first: a 429 offers the next one."""

backbone.rate_limits.add(
    # Every request, by API key (or by address when anonymous).
    RatePolicy("api", {"free": "120/minute", "pro": "1200/minute", "enterprise": "12000/minute"}),
    # Work that costs the service: uploads to validate, statistics, rollups.
    RatePolicy("analysis", {"free": "20/minute", "pro": "200/minute", "enterprise": "2000/minute"}),
    # Exports write whole files.
    RatePolicy("exports", {"free": "10/hour", "pro": "100/hour", "enterprise": "1000/hour"}),
    # Sign-ups come from anonymous addresses.
    RatePolicy("signup", "30/hour"),
)
