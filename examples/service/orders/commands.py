"""Order commands: each is one SQL transaction that writes the order *and* its event.

The event goes into the outbox table in the same transaction as the order
(``outbox.add_async``), so it exists if and only if the order does; the
relay (relay.py) publishes it after the commit. A command that fails
anywhere rolls the whole transaction back: no order, no event. Commands
evict the cached queries of the account.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from conveyor import ConflictError, NotFoundError
from examples.service.backbone import backbone, database, metrics
from examples.service.database import now_utc
from examples.service.repository import Repository

from .models import (
    OUTBOX_TABLE,
    Order,
    OrderCreated,
    OrderProcessed,
    created_event_id,
    processed_event_id,
)

outbox = backbone.events.outbox(table=OUTBOX_TABLE)


def queries_tag(account_id: int) -> str:
    return f"orders:{account_id}"


async def create_order(
    account_id: int, reference: str, customer: str, currency: str, items: list[dict[str, Any]]
) -> Order:
    """Insert the order and its ``OrderCreated`` event in one transaction."""
    total = sum(item["quantity"] * item["unitPriceCents"] for item in items)
    order = Order(
        account_id=account_id,
        reference=reference,
        customer=customer,
        currency=currency,
        total_cents=total,
        items=items,
    )
    try:
        async with database.writing() as session:
            orders = Repository(Order, session)
            orders.add(order)
            await orders.flush()  # the id, for the event
            event = OrderCreated(order.id, account_id, customer, total, currency)
            await outbox.add_async(session, event, event_id=created_event_id(order.id))
    except IntegrityError:
        existing = await _by_reference(account_id, reference)
        raise ConflictError(
            f"order {reference!r} exists already (id {existing})"
            if existing
            else f"order {reference!r} could not be stored"
        ) from None
    await backbone.cache.invalidate_tags(queries_tag(account_id))
    metrics.orders.labels("create").inc()
    return order


async def process_order(account_id: int, order_id: int) -> Order:
    """created -> processed, with its ``OrderProcessed`` event, in one transaction."""
    async with database.writing() as session:
        order = await Repository(Order, session).get_for_update(order_id)
        if order is None or order.account_id != account_id:
            raise NotFoundError(f"no order {order_id}")
        if order.status != "created":
            raise ConflictError(f"order {order_id} is {order.status}, not created")
        order.status = "processed"
        order.processed_at = now_utc()
        await outbox.add_async(
            session, OrderProcessed(order.id, account_id), event_id=processed_event_id(order.id)
        )
    await backbone.cache.invalidate_tags(queries_tag(account_id))
    metrics.orders.labels("process").inc()
    return order


async def _by_reference(account_id: int, reference: str) -> int | None:
    async with database.reading() as session:
        return await session.scalar(
            select(Order.id).where(Order.account_id == account_id, Order.reference == reference)
        )
