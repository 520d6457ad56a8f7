"""A validation of one uploaded billing CSV, its rows (records) and its findings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from examples.service.database import Audited, Base


class Validation(Audited, Base):
    """status: queued -> processing -> completed | failed."""

    __tablename__ = "validations"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    job_id: Mapped[str] = mapped_column(String(64))
    encoding: Mapped[str | None] = mapped_column(String(32), default=None)
    delimiter: Mapped[str | None] = mapped_column(String(4), default=None)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class ValidationRecord(Base):
    """One row of an uploaded file, as read (every value kept as text, as in the file)."""

    __tablename__ = "validation_records"

    validation_id: Mapped[str] = mapped_column(
        ForeignKey("validations.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    customer_email: Mapped[str | None] = mapped_column(String(255))
    issued_on: Mapped[str | None] = mapped_column(String(32))
    due_on: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str | None] = mapped_column(String(32))
    valid: Mapped[bool | None] = mapped_column(Boolean, default=None)
    """None until the rules have run."""


class ValidationFinding(Base):
    """What one rule found wrong in one row."""

    __tablename__ = "validation_findings"
    __table_args__ = (Index("findings_by_rule", "validation_id", "rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    validation_id: Mapped[str] = mapped_column(ForeignKey("validations.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(64))
    column_name: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
