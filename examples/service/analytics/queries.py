"""The analytics reads, cached through conveyor with TTLs tiered by how fresh the data is:

    hourly series   SHORT  (60 s)     the current day moves every hour
    daily series    MEDIUM (5 min)    changes once a day, or on a rollup
    weekly report   LONG   (30 min)   changes on Mondays

Each is cached under its arguments and tagged with its publisher, so a
rollup invalidates exactly what it changed. The warming schedule computes
the default views (the last 30 days) of the publishers active today every
5 minutes, so a first request after a rollup is already warm.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from examples.service.backbone import backbone, database

from .models import AnalyticsEvent, DailyStat, HourlyStat, WeeklyReport
from .rollups import TZ, local_now

DEFAULT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Point:
    """Events and the sum of their values, for one name in one period."""

    period: str
    name: str
    events: int
    value_sum: float


@backbone.cache.cached(
    ttl="MEDIUM", key="daily:{publisher_id}:{start}:{end}", tags=["analytics:{publisher_id}"]
)
async def daily_series(publisher_id: str, start: date, end: date) -> list[Point]:
    async with database.reading() as session:
        rows = await session.execute(
            select(DailyStat.day, DailyStat.name, DailyStat.events, DailyStat.value_sum)
            .where(DailyStat.publisher_id == publisher_id, DailyStat.day.between(start, end))
            .order_by(DailyStat.day, DailyStat.name)
        )
        return [Point(day.isoformat(), name, events, value) for day, name, events, value in rows]


@backbone.cache.cached(
    ttl="SHORT", key="hourly:{publisher_id}:{day}", tags=["analytics:{publisher_id}"]
)
async def hourly_series(publisher_id: str, day: date) -> list[Point]:
    async with database.reading() as session:
        rows = await session.execute(
            select(HourlyStat.hour, HourlyStat.name, HourlyStat.events, HourlyStat.value_sum)
            .where(HourlyStat.publisher_id == publisher_id, HourlyStat.day == day)
            .order_by(HourlyStat.hour, HourlyStat.name)
        )
        return [
            Point(f"{day.isoformat()}T{hour:02d}", name, events, value)
            for hour, name, events, value in rows
        ]


@backbone.cache.cached(ttl="LONG", key="weekly:{publisher_id}", tags=["analytics:{publisher_id}"])
async def latest_weekly_report(publisher_id: str) -> dict[str, Any] | None:
    async with database.reading() as session:
        report = await session.scalar(
            select(WeeklyReport)
            .where(WeeklyReport.publisher_id == publisher_id)
            .order_by(WeeklyReport.week_start.desc())
            .limit(1)
        )
        return None if report is None else dict(report.body)


def default_window() -> tuple[date, date]:
    end = local_now().date()
    return end - timedelta(days=DEFAULT_DAYS - 1), end


@backbone.task(cron="*/5 * * * *", tz=TZ)
async def warm_cache() -> int:
    """Every 5 minutes: the default views of the publishers that had events today."""
    start, end = default_window()
    async with database.reading() as session:
        active = list(
            await session.scalars(
                select(AnalyticsEvent.publisher_id).where(AnalyticsEvent.day == end).distinct()
            )
        )
    for publisher_id in active:
        await daily_series(publisher_id, start, end)
        await hourly_series(publisher_id, end)
        await latest_weekly_report(publisher_id)
    return len(active)
