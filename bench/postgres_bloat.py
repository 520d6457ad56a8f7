"""How the PostgreSQL store's tables grow under continuous load, and what vacuum does.

    python -m bench.postgres_bloat [--seconds S] [--naptime SECONDS] [--sample SECONDS]

Starts a throwaway PostgreSQL (fsync on, the server's autovacuum defaults except
``autovacuum_naptime``), then, for each table setting below, on a fresh schema:
one process enqueues no-op jobs in batches of 500 while a worker (concurrency 50)
drains them, for S seconds, with conveyor's default retention (1,000 completed
jobs kept per queue). Every ``--sample`` seconds it prints the live and dead rows,
the heap and index sizes of ``jobs`` and ``job_events`` and autovacuum's runs so
far, then the jobs done and the largest sizes seen.

- ``server defaults``: the tables as migration 0001 makes them;
- ``tuned``: with migration 0002's per-table autovacuum settings.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg
from tests.postgres_server import running_postgres

from conveyor import Conveyor

TABLES = ("jobs", "job_events")
_STATS = """
SELECT c.relname, s.n_live_tup, s.n_dead_tup, s.autovacuum_count,
    pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE s.schemaname = $1 AND c.relname = ANY ($2::text[]) ORDER BY c.relname
"""
_DEFAULTS = """
ALTER TABLE {schema}.jobs RESET (autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay);
ALTER TABLE {schema}.job_events RESET (autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_cost_delay);
"""


async def run(dsn: str, schema: str, tuned: bool, seconds: float, sample: float) -> None:
    app = Conveyor(f"{dsn}?schema={schema}", log_level="WARNING")

    @app.task(name="noop")
    async def noop(n: int) -> None:
        return None

    async with app:
        conn = await asyncpg.connect(dsn)
        if not tuned:
            await conn.execute(_DEFAULTS.replace("{schema}", schema))
        stop = asyncio.Event()
        worker = app.worker(concurrency=50)
        running = asyncio.create_task(worker.run())
        produced = 0

        async def produce() -> None:
            nonlocal produced
            while not stop.is_set():
                if produced - worker.stats.completed > 5_000:  # keep a backlog, not a flood
                    await asyncio.sleep(0.01)
                    continue
                await app.enqueue_many([noop.call(produced + i) for i in range(500)])
                produced += 500

        producer = asyncio.create_task(produce())
        start = time.monotonic()
        peak: dict[str, tuple[int, int]] = {}
        print(f"-- {'tuned (migration 0002)' if tuned else 'server defaults'}")
        print(
            f"{'t':>5} {'table':<11}{'live':>9}{'dead':>10}{'heap MB':>9}{'idx MB':>8}"
            f"{'autovac':>8}"
        )
        while time.monotonic() - start < seconds:
            await asyncio.sleep(sample)
            for row in await conn.fetch(_STATS, schema, list(TABLES)):
                _print(time.monotonic() - start, row)
                heap, idx = peak.get(row["relname"], (0, 0))
                peak[row["relname"]] = (max(heap, row["heap"]), max(idx, row["indexes"]))
        stop.set()
        await producer
        worker.stop()
        stats = await running
        await conn.close()
    print(f"   {stats.completed:,} jobs done in {seconds:.0f} s; largest sizes (MB):", end="")
    for table, (heap, idx) in peak.items():
        print(f" {table} heap {heap / 2**20:.1f} + indexes {idx / 2**20:.1f};", end="")
    print()


def _print(t: float, row: Any) -> None:
    print(
        f"{t:>5.0f} {row['relname']:<11}{row['n_live_tup']:>9,}{row['n_dead_tup']:>10,}"
        f"{row['heap'] / 2**20:>9.1f}{row['indexes'] / 2**20:>8.1f}{row['autovacuum_count']:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--naptime", type=float, default=60, help="autovacuum_naptime, s")
    parser.add_argument("--only", choices=["default", "tuned"], help="run one setting only")
    parser.add_argument("--sample", type=float, default=10)
    args = parser.parse_args()
    settings = {"fsync": "on", "full_page_writes": "on", "autovacuum_naptime": f"{args.naptime}s"}
    with running_postgres(settings) as server:
        dsn = server.store_dsn
        for tuned in (False, True):
            if args.only is not None and tuned != (args.only == "tuned"):
                continue
            asyncio.run(
                run(
                    dsn,
                    "bloat_tuned" if tuned else "bloat_default",
                    tuned,
                    args.seconds,
                    args.sample,
                )
            )


if __name__ == "__main__":
    main()
