"""The consumers of the order events: two groups, each gets every event.

- ``audit``: conveyor's audit handler, one row per event in ``audit_log``
  (``INSERT ... ON CONFLICT (event_id) DO NOTHING``: a redelivery records
  nothing twice).
- ``notifier``: "sends" a notification per event (here: a row in
  ``notifications`` keyed by the event id, and a log line); ``idempotent``,
  so a delivery it has processed is skipped.
"""

from __future__ import annotations

import structlog

from conveyor import EventMeta
from examples.service.backbone import backbone, database, metrics
from examples.service.database import upsert

from .models import AUDIT_TABLE, Notification, OrderCreated, OrderProcessed

log = structlog.get_logger("service.notifier")

audit = backbone.events.audit(
    OrderCreated, OrderProcessed, database=database.sync_engine, table=AUDIT_TABLE
)


async def _notify(order_id: int, kind: str, meta: EventMeta) -> None:
    async with database.writing() as session:
        row = {"event_id": meta.event_id, "order_id": order_id, "kind": kind}
        await upsert(session, Notification, [row], ["event_id"])
    metrics.notifications.labels(meta.type).inc()
    log.info("notification sent", order_id=order_id, kind=kind)


@backbone.events.subscribe(OrderCreated, group="notifier", idempotent=True)
async def order_created(event: OrderCreated, meta: EventMeta) -> None:
    await _notify(event.order_id, "order-received", meta)


@backbone.events.subscribe(OrderProcessed, group="notifier", idempotent=True)
async def order_processed(event: OrderProcessed, meta: EventMeta) -> None:
    await _notify(event.order_id, "order-shipped", meta)
