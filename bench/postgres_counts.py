"""What the counting triggers cost: bulk enqueue and drain with them on and off.

    python -m bench.postgres_counts [--jobs N] [--repeat R]

One throwaway PostgreSQL server (fsync on), one conveyor store. Each repeat
measures, in alternating order, a bulk enqueue of N no-op jobs and their drain
at concurrency 50, once with the statement triggers on ``jobs`` that keep the
job counts (``sql/functions/counts.sql``) and once with them disabled
(``ALTER TABLE ... DISABLE TRIGGER USER``, so nothing is counted). Medians are
printed with the ratio off / on. The store is emptied between measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import psycopg
from tests.postgres_server import running_postgres

from conveyor import Conveyor

SCHEMA = "conveyor_bench"


async def measure(url: str, jobs: int) -> tuple[float, float]:
    app = Conveyor(url, log_level="WARNING")

    @app.task
    async def noop(n: int) -> None:
        return None

    async with app:
        started = time.perf_counter()
        await app.enqueue_many([noop.call(i) for i in range(jobs)])
        enqueue = jobs / (time.perf_counter() - started)
        started = time.perf_counter()
        stats = await app.work(burst=True, concurrency=50)
        drain = jobs / (time.perf_counter() - started)
        assert stats.completed == jobs, stats
    return enqueue, drain


def set_triggers(dsn: str, on: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        action = "ENABLE" if on else "DISABLE"
        conn.execute(f"ALTER TABLE {SCHEMA}.jobs {action} TRIGGER USER")
        conn.execute(f"DELETE FROM {SCHEMA}.jobs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with running_postgres({"fsync": "on", "full_page_writes": "on"}) as server:
        url = server.store_url(SCHEMA)
        asyncio.run(measure(url, 100))  # makes the schema
        for r in range(args.repeat):
            for on in (True, False) if r % 2 == 0 else (False, True):
                set_triggers(server.store_dsn, on)
                results[on].append(asyncio.run(measure(url, args.jobs)))
                print(f"repeat {r + 1} triggers {'on ' if on else 'off'}: {results[on][-1]}")
        set_triggers(server.store_dsn, True)
    for index, what in enumerate(("enqueue bulk", "drain C=50")):
        with_ = statistics.median(m[index] for m in results[True])
        without = statistics.median(m[index] for m in results[False])
        print(
            f"{what:<14} triggers on {with_:>9,.0f} jobs/s  off {without:>9,.0f}"
            f"  off/on {without / with_:.2f}"
        )


if __name__ == "__main__":
    main()
