"""Orders, the notifications the notifier group sent, and the events they publish."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, column, table
from sqlalchemy.orm import Mapped, mapped_column

from examples.service.database import Audited, Base, now_utc

OUTBOX_TABLE = "outbox"
AUDIT_TABLE = "audit_log"


class Order(Audited, Base):
    """status: created -> processed. ``reference`` is the client's own id of the order
    (unique per account), so a create sent twice makes one order."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("account_id", "reference", name="orders_reference"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64))
    customer: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="created", index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(Integer)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Notification(Base):
    """One notification sent for one event (the notifier group's own idempotency key)."""

    __tablename__ = "notifications"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    order_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)


audit_log = table(
    AUDIT_TABLE,
    column("event_id"),
    column("type"),
    column("occurred_at"),
    column("recorded_at"),
    column("request_id"),
)
"""conveyor's audit table (``app.events.audit``), as far as the order pages read it."""


class OrderCreated(msgspec.Struct, frozen=True):
    order_id: int
    account_id: int
    customer: str
    total_cents: int
    currency: str


class OrderProcessed(msgspec.Struct, frozen=True):
    order_id: int
    account_id: int


def created_event_id(order_id: int) -> str:
    return f"order-{order_id}-created"


def processed_event_id(order_id: int) -> str:
    return f"order-{order_id}-processed"
