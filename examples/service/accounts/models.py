"""Accounts, their API keys (stored hashed) and the keys' usage per window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from examples.service.database import Audited, Base


class Account(Audited, Base):
    """A customer; its plan (tier) sets the rate limits of all its keys."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(20))


class ApiKey(Audited, Base):
    """One API key. Only its SHA-256 digest is stored (the key itself is shown once, when
    made); ``prefix`` (its first characters) lets a person tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class KeyUsage(Base):
    """Requests made with a key in one window (``usage_flush_seconds`` long), written by
    the usage flush. Written with "set", never "add", so a flush that runs twice over
    the same window writes the same row."""

    __tablename__ = "api_key_usage"

    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """Unix seconds."""
    requests: Mapped[int] = mapped_column(BigInteger)
