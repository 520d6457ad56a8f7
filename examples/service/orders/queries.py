"""Order queries: read-only, through the repository, cached per account until a command
of that account evicts them (tag ``orders:<account>``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from examples.service.backbone import backbone, database
from examples.service.database import iso
from examples.service.repository import Repository
from examples.service.specification import Spec, all_of, where

from .models import Order, audit_log, created_event_id, processed_event_id


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """What a listing asks for; each part is a specification, ANDed together."""

    statuses: tuple[str, ...] = ()
    """Any of these (OR)."""
    not_statuses: tuple[str, ...] = ()
    """None of these (NOT)."""
    min_total_cents: int | None = None
    max_total_cents: int | None = None
    customer: str | None = None
    """Part of the customer's name."""

    def spec(self, account_id: int) -> Spec:
        parts: list[Spec] = [where("account_id").eq(account_id)]
        if self.statuses:
            any_status = where("status").eq(self.statuses[0])
            for status in self.statuses[1:]:
                any_status = any_status | where("status").eq(status)
            parts.append(any_status)
        parts += [~where("status").eq(status) for status in self.not_statuses]
        if self.min_total_cents is not None:
            parts.append(where("total_cents").ge(self.min_total_cents))
        if self.max_total_cents is not None:
            parts.append(where("total_cents").le(self.max_total_cents))
        if self.customer:
            parts.append(where("customer").contains(self.customer))
        spec = all_of(parts)
        assert spec is not None
        return spec

    def cache_key(self) -> str:
        return repr(self)


def view(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.id,
        "reference": order.reference,
        "customer": order.customer,
        "status": order.status,
        "currency": order.currency,
        "totalCents": order.total_cents,
        "items": order.items,
        "createdAt": iso(order.created_at),
        "processedAt": iso(order.processed_at),
        "createdBy": order.created_by,
        "updatedBy": order.updated_by,
        "schemaVersion": order.schema_version,
    }


@backbone.cache.cached(
    ttl="MEDIUM", key="order:{account_id}:{order_id}", tags=["orders:{account_id}"]
)
async def get_order(account_id: int, order_id: int) -> dict[str, Any] | None:
    async with database.reading() as session:
        order = await Repository(Order, session).get(order_id)
    return None if order is None or order.account_id != account_id else view(order)


async def list_orders(account_id: int, orders: OrderFilter, page: int, size: int) -> dict[str, Any]:
    return await _list_orders(account_id, orders.cache_key(), orders, page, size)


@backbone.cache.cached(
    ttl="MEDIUM", key="orders:{account_id}:{page}:{size}:{key}", tags=["orders:{account_id}"]
)
async def _list_orders(
    account_id: int, key: str, orders: OrderFilter, page: int, size: int
) -> dict[str, Any]:
    async with database.reading() as session:
        found = await Repository(Order, session).find(
            orders.spec(account_id),
            page=page,
            size=size,
            order_by=[Order.created_at.desc(), Order.id.desc()],
        )
    return found.to_json(view)


async def audit_rows(order_id: int) -> list[dict[str, Any]]:
    """The audit log's rows of the order's events (not cached: it is the evidence)."""
    ids = [created_event_id(order_id), processed_event_id(order_id)]
    async with database.reading() as session:
        rows = await session.execute(
            select(
                audit_log.c.event_id,
                audit_log.c.type,
                audit_log.c.occurred_at,
                audit_log.c.recorded_at,
                audit_log.c.request_id,
            )
            .where(audit_log.c.event_id.in_(ids))
            .order_by(audit_log.c.occurred_at)
        )
        return [
            {
                "eventId": event_id,
                "type": type_,
                "occurredAt": occurred,
                "recordedAt": recorded,
                "requestId": request_id,
            }
            for event_id, type_, occurred, recorded, request_id in rows
        ]
