"""The outbox relay: committed order events, from the service's database to the bus.

It runs inside the server by default (``SERVICE_OUTBOX_RELAY=true``), or as
its own process beside servers that run none:

    SERVICE_OUTBOX_RELAY=false conveyor serve examples.service:app
    python -m examples.service.relay

It publishes a batch of committed rows, then deletes them. Killed between a
commit and its publish, the row waits for the next relay; killed between
publish and delete, the next relay publishes the same event ids again, which
the bus turns into nothing (deliveries are ``<event id>@<group>``) and the
audit and notifier groups would record once anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import structlog
from sqlalchemy import text

from conveyor import CheckResult, Status

from .backbone import backbone, database, settings
from .orders import handlers  # the groups to route to, even before a worker declared them
from .orders.commands import outbox

__all__ = ["check_outbox", "handlers", "relay_until", "run"]

STUCK_SECONDS = 60.0
"""An event older than this still in the outbox means no relay is running."""

log = structlog.get_logger("service.relay")


async def relay_until(stop: asyncio.Event) -> None:
    await outbox.relay(database.sync_engine, interval=settings.outbox_interval, stop=stop)


async def check_outbox() -> CheckResult:
    """The health check ``outbox``: events committed and not yet relayed, and the age of
    the oldest (degraded past a minute: is a relay running?)."""
    async with database.reading() as session:
        pending, oldest_ms = (
            await session.execute(text(f"SELECT count(*), min(created_at) FROM {outbox.table}"))
        ).one()
    age = 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000)
    status = Status.DEGRADED if age > STUCK_SECONDS else Status.OK
    return CheckResult(status, f"{pending} pending, oldest {age:.1f} s")


async def run() -> None:
    """Relay until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with backbone:
        await database.create_tables(outbox.create_table, handlers.audit.create_table)
        log.info("outbox relay started", interval=settings.outbox_interval)
        with contextlib.suppress(asyncio.CancelledError):
            await relay_until(stop)
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(run())
