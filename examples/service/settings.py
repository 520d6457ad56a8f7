"""The service's own settings (environment ``SERVICE_*``); conveyor's are ``CONVEYOR_*``.

    SERVICE_DATABASE_URL=postgresql+psycopg://app:secret@db/service   # default: SQLite
    CONVEYOR_URL=redis://localhost:6379/0                          # jobs, cache, events, limits

Built once at import, so the schedules' time zone and the routes' limits are
known when the tasks are declared; a bad value stops the import with one
``ConfigError`` that lists every problem.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor import ConfigError

DEFAULT_DIR = Path(".conveyor")


class ServiceSettings(BaseSettings):
    """Where the service keeps its data and how its products behave."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore")

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DIR / 'service.db'}"
    """The service's own tables (SQLAlchemy async URL: ``sqlite+aiosqlite://``,
    ``postgresql+psycopg://`` or ``postgresql+asyncpg://``)."""
    data_dir: Path = DEFAULT_DIR / "service"
    """Uploaded CSV files (until validated) and export files (until they expire)."""
    timezone: str = "UTC"
    """The time zone of the schedules (daily aggregation at 01:00, report on Mondays...)."""
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    export_ttl_seconds: float = Field(default=86_400.0, gt=0)
    """How long an export file can be downloaded before the cleanup removes it."""
    export_cleanup_seconds: int = Field(default=3600, gt=0)
    """How often the cleanup of expired exports runs."""
    max_export_rows: int = Field(default=1_000_000, gt=0)
    """Excel's sheet holds 1,048,576 rows; an export stops short of it."""
    usage_flush_seconds: int = Field(default=300, gt=0)
    """Per-key usage is counted in the cache per window of this many seconds and written
    to the database by a schedule that fires as often (every 5 minutes)."""
    raw_event_days: int = Field(default=90, gt=0)
    """The daily cleanup deletes raw analytics events older than this (rollups stay)."""
    outbox_relay: bool = True
    """Run the outbox relay inside the server. Off when it runs as its own process
    (``python -m examples.service.relay``)."""
    outbox_interval: float = Field(default=0.2, gt=0)
    """Seconds between relay rounds when the outbox is empty."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if scheme not in ("sqlite+aiosqlite", "postgresql+psycopg", "postgresql+asyncpg"):
            raise ValueError(
                "use an async SQLAlchemy URL: sqlite+aiosqlite:///path.db,"
                " postgresql+psycopg://... or postgresql+asyncpg://..."
            )
        return value


def load_settings() -> ServiceSettings:
    """The settings from the environment, or one ConfigError listing every problem."""
    try:
        return ServiceSettings()
    except ValidationError as exc:
        problems = [
            f"SERVICE_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigError(problems) from None
