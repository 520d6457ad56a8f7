"""Exports of the reference service, run by a conveyor worker in this process, with
the peak of Python's allocations (tracemalloc) while it runs; prints them as JSON.

    python -m tests.integration.service_export_memory ROWS [ROWS ...]

The environment (``service_env(ROOT)``) must be set before this module imports the
service: its settings, database and data directory are read at import.
``test_service_export_memory.py`` runs it on a warm-up size, N and 10 N rows in a
process of its own, so nothing else allocated in the test process counts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tracemalloc
from datetime import UTC, date, datetime
from typing import Any

from examples.service import main  # noqa: F401 (registers every task, like the server)
from examples.service.accounts.models import Account
from examples.service.analytics.models import AnalyticsEvent, Publisher
from examples.service.backbone import backbone, database
from examples.service.exports.models import Export
from examples.service.exports.task import PARTITION, export_path, run_export
from sqlalchemy import insert

DAY = date(2026, 3, 2)
CHUNK = 5_000


async def fill(publisher: str, rows: int) -> str:
    """``rows`` events of a new publisher, and a pending export of them; the export's id."""
    export_id = f"exp-{publisher}"
    async with database.writing() as session:
        session.add(Publisher(id=publisher, account_id=1, name=publisher))
        session.add(
            Export(
                id=export_id,
                account_id=1,
                start=DAY,
                end=DAY,
                publisher_id=publisher,
                job_id=f"job-{export_id}",
            )
        )
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    for first in range(0, rows, CHUNK):
        events = [
            {
                "publisher_id": publisher,
                "name": f"event-{n % 7}",
                "value": n * 0.25,
                "occurred_at": at,
                "day": DAY,
                "hour": 12,
            }
            for n in range(first, min(first + CHUNK, rows))
        ]
        async with database.writing() as session:
            await session.execute(insert(AnalyticsEvent), events)
    return export_id


async def measured_export(export_id: str) -> dict[str, Any]:
    """Run the export job through a worker; the peak of allocations while it ran."""
    job = await run_export.enqueue(export_id)
    gc.collect()
    tracemalloc.start()
    await backbone.work(queues=[job.queue], burst=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = await job.wait(timeout=10)
    with export_path(export_id).open(encoding="utf-8") as written:
        lines = sum(1 for _ in written)
    return {"peak": peak, "result": result, "lines": lines, "partition": PARTITION}


async def exports(sizes: list[int]) -> list[dict[str, Any]]:
    """One export per size, in order, in one process. The first one warms up what is
    allocated once (compiled queries, imports), so list a small size first."""
    await database.create_tables()
    async with database.writing() as session:
        session.add(Account(id=1, name="exporter", tier="enterprise"))
    found = []
    async with backbone:
        for n, rows in enumerate(sizes):
            export_id = await fill(f"pub{n}", rows)
            found.append(await measured_export(export_id))
    await database.dispose()
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(exports([int(size) for size in sys.argv[1:]]))))
