"""A consumer for the event crash tests: two groups handle OrderEvent, writing what they did.

Configured by environment: CONVEYOR_URL, RUNS_DIR (each process appends
``<group> <n>`` to ``runs-<pid>.txt`` when a handler finishes), LEASE_SECONDS,
SWEEP_INTERVAL, MAX_STALLED. In group ``notify``, every event whose number
is a multiple of POISON_EVERY always fails: it must end as a dead letter.
Run with ``python -m tests.integration.events_consumer_app``.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import msgspec

from conveyor import Conveyor

POISON_EVERY = 500


class OrderEvent(msgspec.Struct, frozen=True):
    n: int


app = Conveyor(
    log_level="ERROR",
    lease_seconds=float(os.environ.get("LEASE_SECONDS", "30")),
    sweep_interval=float(os.environ.get("SWEEP_INTERVAL", "5")),
    keep_completed=1_000_000,
    shutdown_timeout=5,
)
_max_stalled = int(os.environ.get("MAX_STALLED", "1"))
_runs = Path(os.environ.get("RUNS_DIR", ".")) / f"runs-{os.getpid()}.txt"


def _record(group: str, n: int) -> None:
    with _runs.open("a") as out:
        out.write(f"{group} {n}\n")


@app.events.subscribe(OrderEvent, group="audit", max_stalled=_max_stalled)
async def audit(event: OrderEvent) -> None:
    await asyncio.sleep(random.uniform(0, 0.002))
    _record("audit", event.n)


@app.events.subscribe(OrderEvent, group="notify", retries=2, backoff=0, max_stalled=_max_stalled)
def notify(event: OrderEvent) -> None:
    if event.n % POISON_EVERY == 0:
        raise RuntimeError(f"cannot notify about order {event.n}")
    _record("notify", event.n)


if __name__ == "__main__":
    asyncio.run(app.work(concurrency=20, handle_signals=True))
