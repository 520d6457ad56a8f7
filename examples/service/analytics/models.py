"""Publishers, their raw analytics events, and the rollups the schedules compute."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from examples.service.database import Audited, Base


class Publisher(Audited, Base):
    """A site or app of an account; events are recorded per publisher and day."""

    __tablename__ = "publishers"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))


class AnalyticsEvent(Base):
    """One raw event. ``day`` and ``hour`` are in the service's time zone (the one the
    schedules run in), fixed when the event is recorded."""

    __tablename__ = "analytics_events"
    __table_args__ = (Index("analytics_events_by_day", "publisher_id", "day", "hour"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    publisher_id: Mapped[str] = mapped_column(ForeignKey("publishers.id"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(Integer)


class HourlyStat(Base):
    __tablename__ = "analytics_hourly"

    publisher_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[float] = mapped_column(Float)


class DailyStat(Base):
    __tablename__ = "analytics_daily"

    publisher_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[float] = mapped_column(Float)


class WeeklyReport(Base):
    """The Monday report of one publisher's previous week (Monday to Sunday)."""

    __tablename__ = "analytics_weekly"

    publisher_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
