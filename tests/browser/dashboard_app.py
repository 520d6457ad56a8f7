"""The service the browser tests serve with ``conveyor serve`` (SQLite in a temporary dir).

``DASH_TEST_URL`` is the store, ``DASH_TEST_MARKS`` a directory where the
flaky task and the flaky event handler leave a mark on their first (failing)
run, so a retry or a replay from the dashboard succeeds. Keys come from
``CONVEYOR_ADMIN_KEYS``; a loopback client without a key is a viewer, and
127.0.0.1 is a trusted proxy, so a forwarded request shows as its remote
client (and gets 401 without a key).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec
from fastapi import FastAPI

from conveyor import AdminOptions, Conveyor, ServiceOptions, as_service, current_job

app = Conveyor(
    os.environ.get("DASH_TEST_URL", "memory://"),
    history_flush_seconds=1,
    log_format="json",
    shutdown_timeout=2,
)
MARKS = Path(os.environ.get("DASH_TEST_MARKS", "."))


class InvoiceSent(msgspec.Struct):
    invoice_id: int


@app.task(search=["customer_id"], queue="reports")
async def build_report(customer_id: int, steps: int = 20, api_token: str = "") -> str:
    """Reports its progress step by step (0.25 s a step)."""
    for step in range(1, steps + 1):
        await asyncio.sleep(0.25)
        current_job().set_progress(100 * step / steps)
        current_job().log(f"step {step} of {steps}")
    return f"report-{customer_id}.csv"


@app.task(queue="billing")
async def charge_card(invoice_id: int) -> None:
    """Fails on its first run (no mark yet), succeeds when retried."""
    mark = MARKS / f"charge-{invoice_id}"
    if not mark.exists():
        mark.touch()
        raise ConnectionError(f"card processor unreachable for invoice {invoice_id}")


@app.events.subscribe(InvoiceSent, group="mailer", retries=0)
async def mail_invoice(event: InvoiceSent) -> None:
    mark = MARKS / f"mail-{event.invoice_id}"
    if not mark.exists():
        mark.touch()
        raise RuntimeError(f"smtp refused invoice {event.invoice_id}")


@app.task(every=3600, queue="billing")
async def nightly_digest() -> None:
    """A schedule, so the schedules page has one to show (and to act on)."""


api = FastAPI(title="dashboard test service")


@api.post("/invoices/{invoice_id}/sent", status_code=202)
async def invoice_sent(invoice_id: int) -> dict[str, int]:
    await app.events.publish(InvoiceSent(invoice_id))
    return {"invoice_id": invoice_id}


as_service(
    api,
    app,
    ServiceOptions(
        title="dashboard test service",
        admin=AdminOptions(loopback_role="viewer", trusted_proxies=["127.0.0.1"], poll_seconds=2),
    ),
)
