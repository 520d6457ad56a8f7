"""The analytics schedules, in the service's time zone (``SERVICE_TIMEZONE``):

    hourly metrics      at :05 every hour   the hour that ended -> analytics_hourly
    daily aggregation   at 01:00            yesterday            -> analytics_daily
    cleanup             at 02:00            raw events past ``raw_event_days``, old usage
    weekly report       Mondays at 08:00    last Monday..Sunday  -> analytics_weekly
    (cache warming, every 5 minutes, is in queries.py)

A rollup recomputes its whole period from the raw events and *sets* the
rows (an upsert), so running it twice, or again after late events, gives the
right numbers. Each one then invalidates the cached answers it changed.
``aggregate_day`` is the same work on demand (``POST /api/v1/analytics/rollups``).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select

from examples.service.accounts.models import KeyUsage
from examples.service.backbone import backbone, database, settings
from examples.service.database import now_utc, upsert

from .models import AnalyticsEvent, DailyStat, HourlyStat, WeeklyReport

log = structlog.get_logger("service.analytics")
TZ = settings.timezone
ZONE = zoneinfo.ZoneInfo(TZ)
HTTP_TAG = "analytics-http"
USAGE_KEPT_DAYS = 90


def local_now() -> datetime:
    return now_utc().astimezone(ZONE)


def publisher_tag(publisher_id: str) -> str:
    return f"analytics:{publisher_id}"


async def forget_cached(publisher_ids: Sequence[str]) -> None:
    """Drop the cached series and responses of these publishers, in every process."""
    if publisher_ids:
        await backbone.cache.invalidate_tags(HTTP_TAG, *map(publisher_tag, publisher_ids))


async def roll_up_hours(day: date, hours: Sequence[int]) -> list[str]:
    """Recompute ``analytics_hourly`` for ``hours`` of ``day``; returns the publishers."""
    async with database.writing() as session:
        found = await session.execute(
            select(
                AnalyticsEvent.publisher_id,
                AnalyticsEvent.hour,
                AnalyticsEvent.name,
                func.count(),
                func.sum(AnalyticsEvent.value),
            )
            .where(AnalyticsEvent.day == day, AnalyticsEvent.hour.in_(list(hours)))
            .group_by(AnalyticsEvent.publisher_id, AnalyticsEvent.hour, AnalyticsEvent.name)
        )
        rows = [
            {"publisher_id": p, "day": day, "hour": h, "name": n, "events": c, "value_sum": s}
            for p, h, n, c, s in found
        ]
        await upsert(
            session,
            HourlyStat,
            rows,
            ["publisher_id", "day", "hour", "name"],
            ["events", "value_sum"],
        )
    return sorted({str(row["publisher_id"]) for row in rows})


async def roll_up_day(day: date) -> list[str]:
    """Recompute ``analytics_daily`` (and every hour) of ``day``; returns the publishers."""
    publishers = await roll_up_hours(day, range(24))
    async with database.writing() as session:
        found = await session.execute(
            select(
                AnalyticsEvent.publisher_id,
                AnalyticsEvent.name,
                func.count(),
                func.sum(AnalyticsEvent.value),
            )
            .where(AnalyticsEvent.day == day)
            .group_by(AnalyticsEvent.publisher_id, AnalyticsEvent.name)
        )
        rows = [
            {"publisher_id": p, "day": day, "name": n, "events": c, "value_sum": s}
            for p, n, c, s in found
        ]
        await upsert(
            session, DailyStat, rows, ["publisher_id", "day", "name"], ["events", "value_sum"]
        )
    return sorted({*publishers, *(str(row["publisher_id"]) for row in rows)})


@backbone.task(retries=3)
async def aggregate_day(day: str) -> dict[str, Any]:
    """Roll up one day now (``YYYY-MM-DD``, in the service's time zone)."""
    publishers = await roll_up_day(date.fromisoformat(day))
    await forget_cached(publishers)
    return {"day": day, "publishers": len(publishers)}


@backbone.task(cron="0 1 * * *", tz=TZ, retries=3)
async def daily_aggregation() -> dict[str, Any]:
    """Yesterday's rollups, at 01:00."""
    yesterday = local_now().date() - timedelta(days=1)
    publishers = await roll_up_day(yesterday)
    await forget_cached(publishers)
    return {"day": yesterday.isoformat(), "publishers": len(publishers)}


@backbone.task(cron="5 * * * *", tz=TZ, retries=3)
async def hourly_metrics() -> dict[str, Any]:
    """The hour that just ended (and the one before, for events that came late)."""
    now = local_now().replace(minute=0, second=0, microsecond=0)
    touched: set[str] = set()
    for back in (1, 2):
        hour = now - timedelta(hours=back)
        touched.update(await roll_up_hours(hour.date(), [hour.hour]))
    await forget_cached(sorted(touched))
    return {"hour": (now - timedelta(hours=1)).isoformat(), "publishers": len(touched)}


@backbone.task(cron="0 8 * * 1", tz=TZ, retries=3)
async def weekly_report() -> dict[str, Any]:
    """Monday 08:00: each publisher's last week, Monday to Sunday, from the daily rollups."""
    today = local_now().date()
    week_start = today - timedelta(days=today.weekday() + 7)
    return await build_weekly_reports(week_start)


async def build_weekly_reports(week_start: date) -> dict[str, Any]:
    week_end = week_start + timedelta(days=6)
    async with database.writing() as session:
        found = await session.execute(
            select(
                DailyStat.publisher_id,
                DailyStat.name,
                func.sum(DailyStat.events),
                func.sum(DailyStat.value_sum),
            )
            .where(DailyStat.day.between(week_start, week_end))
            .group_by(DailyStat.publisher_id, DailyStat.name)
        )
        bodies: dict[str, dict[str, Any]] = {}
        for publisher_id, name, events, value_sum in found:
            body = bodies.setdefault(
                publisher_id,
                {"weekStart": week_start.isoformat(), "weekEnd": week_end.isoformat(), "names": {}},
            )
            body["names"][name] = {"events": int(events), "valueSum": float(value_sum)}
        rows = [
            {"publisher_id": p, "week_start": week_start, "body": body, "generated_at": now_utc()}
            for p, body in bodies.items()
        ]
        await upsert(
            session, WeeklyReport, rows, ["publisher_id", "week_start"], ["body", "generated_at"]
        )
    await forget_cached(sorted(bodies))
    return {"weekStart": week_start.isoformat(), "publishers": len(bodies)}


@backbone.task(cron="0 2 * * *", tz=TZ, retries=3)
async def daily_cleanup() -> dict[str, int]:
    """02:00: raw events past ``raw_event_days`` (their rollups stay) and usage rows past
    90 days, in short batches so the write lock is never held long."""
    oldest_day = local_now().date() - timedelta(days=settings.raw_event_days)
    events = await _delete_old_events(oldest_day)
    cutoff = int((now_utc() - timedelta(days=USAGE_KEPT_DAYS)).timestamp())
    async with database.writing() as session:
        result = await session.execute(delete(KeyUsage).where(KeyUsage.window_start < cutoff))
        usage = getattr(result, "rowcount", 0)
    log.info("daily cleanup", events=events, usage_rows=usage)
    return {"events": events, "usageRows": int(usage or 0)}


async def _delete_old_events(oldest_day: date) -> int:
    deleted = 0
    while True:
        async with database.writing() as session:
            ids = list(
                await session.scalars(
                    select(AnalyticsEvent.id).where(AnalyticsEvent.day < oldest_day).limit(5_000)
                )
            )
            if not ids:
                return deleted
            await session.execute(delete(AnalyticsEvent).where(AnalyticsEvent.id.in_(ids)))
        deleted += len(ids)
