"""An export: its request (a date range), its state, and the file it produced."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from examples.service.database import Audited, Base


class Export(Audited, Base):
    """status: pending -> processing -> completed | failed; completed -> expired."""

    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    publisher_id: Mapped[str | None] = mapped_column(String(24), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    job_id: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int | None] = mapped_column(Integer, default=None)
    size_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
