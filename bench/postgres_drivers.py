"""Which async driver the PostgreSQL store uses: asyncpg against psycopg 3, measured.

    python -m bench.postgres_drivers [--jobs N] [--repeat R]

Starts a throwaway PostgreSQL (tests/postgres_server.py: fsync off, loopback) and
runs, for each driver, the two statements the store lives on, on one table shaped
like the store's ``jobs`` (same partial index on ready rows):

- enqueue: N jobs inserted in batches of 1 (N sequential round trips) and of 500
  (one ``INSERT ... SELECT FROM unnest(arrays)`` per batch);
- exchange: one worker loop that, in one statement, finishes the jobs it holds and
  claims the next ones (``FOR UPDATE SKIP LOCKED``), with a batch of 1 (one job per
  round trip: the latency of the round trip) and of 50 (the worker's default).

Both drivers use prepared statements and the binary protocol where they can
(asyncpg always; psycopg with ``prepare_threshold=0`` and binary results).
Medians of R repeats, in jobs per second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
from tests.postgres_server import running_postgres

SCHEMA = """
DROP TABLE IF EXISTS bench_jobs;
CREATE TABLE bench_jobs (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    queue text NOT NULL,
    state text NOT NULL,
    priority integer NOT NULL,
    run_at bigint NOT NULL,
    payload bytea NOT NULL,
    token text,
    lease_until bigint,
    attempts integer NOT NULL DEFAULT 0,
    result bytea,
    finished_at bigint
);
CREATE INDEX bench_jobs_ready ON bench_jobs (queue, priority DESC, run_at, seq)
    WHERE state = 'waiting';
"""

INSERT = (
    "INSERT INTO bench_jobs (id, queue, state, priority, run_at, payload)"
    " SELECT i, 'default', 'waiting', 0, $2, $3 FROM unnest($1::text[]) AS i"
)
# Finish what the worker holds, then claim: one statement, one round trip.
EXCHANGE = """
WITH done AS (
    UPDATE bench_jobs SET state = 'completed', result = '\\x31', finished_at = $3,
        token = NULL, lease_until = NULL
    WHERE id = ANY($1::text[]) AND token = $2 AND state = 'active'
    RETURNING 1
), picked AS (
    SELECT seq FROM bench_jobs WHERE queue = 'default' AND state = 'waiting'
    ORDER BY priority DESC, run_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED
)
UPDATE bench_jobs j SET state = 'active', token = $5, lease_until = $3 + 30000,
    attempts = attempts + 1
FROM picked WHERE j.seq = picked.seq
RETURNING j.id, j.payload, j.attempts, (SELECT count(*) FROM done)
"""


class Driver:
    name = ""

    async def open(self, dsn: str) -> None: ...
    async def close(self) -> None: ...
    async def script(self, sql: str) -> None: ...
    async def insert(self, ids: list[str], now: int) -> None: ...
    async def exchange(self, ids: list[str], token: str, now: int, n: int, new: str) -> list[Any]:
        raise NotImplementedError


class Asyncpg(Driver):
    name = "asyncpg"

    async def open(self, dsn: str) -> None:
        self.conn: asyncpg.Connection = await asyncpg.connect(dsn)

    async def close(self) -> None:
        await self.conn.close()

    async def script(self, sql: str) -> None:
        await self.conn.execute(sql)

    async def insert(self, ids: list[str], now: int) -> None:
        await self.conn.execute(INSERT, ids, now, b"[[1],{}]")

    async def exchange(self, ids: list[str], token: str, now: int, n: int, new: str) -> list[Any]:
        return list(await self.conn.fetch(EXCHANGE, ids, token, now, n, new))


class Psycopg(Driver):
    name = "psycopg"

    async def open(self, dsn: str) -> None:
        self.conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=0)

    async def close(self) -> None:
        await self.conn.close()

    async def script(self, sql: str) -> None:
        await self.conn.execute(sql, prepare=False)

    async def insert(self, ids: list[str], now: int) -> None:
        await self.conn.execute(_ps(INSERT), _named(ids, now, b"[[1],{}]"))

    async def exchange(self, ids: list[str], token: str, now: int, n: int, new: str) -> list[Any]:
        cur = self.conn.cursor(binary=True)
        await cur.execute(_ps(EXCHANGE), _named(ids, token, now, n, new))
        return await cur.fetchall()


def _ps(sql: str) -> str:
    """``$n`` placeholders as psycopg's ``%(pn)s``."""
    for i in range(9, 0, -1):
        sql = sql.replace(f"${i}", f"%(p{i})s")
    return sql


def _named(*values: Any) -> dict[str, Any]:
    return {f"p{i}": value for i, value in enumerate(values, 1)}


async def enqueue_rate(driver: Driver, jobs: int, batch: int) -> float:
    await driver.script(SCHEMA)
    now = time.time_ns() // 1_000_000
    start = time.perf_counter()
    for first in range(0, jobs, batch):
        await driver.insert([f"j{i}" for i in range(first, min(first + batch, jobs))], now)
    return jobs / (time.perf_counter() - start)


async def exchange_rate(driver: Driver, jobs: int, batch: int) -> float:
    await driver.script(SCHEMA)
    now = time.time_ns() // 1_000_000
    for first in range(0, jobs, 1000):
        await driver.insert([f"j{i}" for i in range(first, min(first + 1000, jobs))], now)
    held: list[str] = []
    token, done = "t0", 0
    start = time.perf_counter()
    while True:
        new = f"t{done}"
        rows = await driver.exchange(held, token, now, batch, new)
        done += len(held)
        if not rows:
            break
        held, token = [r[0] for r in rows], new
    assert done == jobs, (done, jobs)
    return jobs / (time.perf_counter() - start)


async def measure(dsn: str, jobs: int, repeat: int) -> dict[tuple[str, str], float]:
    cases: dict[str, Callable[[Driver], Awaitable[float]]] = {
        "enqueue, batch 1": lambda d: enqueue_rate(d, jobs // 5, 1),
        "enqueue, batch 500": lambda d: enqueue_rate(d, jobs, 500),
        "finish+claim, batch 1": lambda d: exchange_rate(d, jobs // 5, 1),
        "finish+claim, batch 50": lambda d: exchange_rate(d, jobs, 50),
    }
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeat):
        for driver in (Asyncpg(), Psycopg()):
            await driver.open(dsn)
            try:
                for case, run in cases.items():
                    results.setdefault((driver.name, case), []).append(await run(driver))
            finally:
                await driver.close()
    return {key: statistics.median(values) for key, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with running_postgres() as server:
        medians = asyncio.run(measure(server.dsn, args.jobs, args.repeat))
    print(f"{'jobs/s':<24}{'asyncpg':>12}{'psycopg':>12}{'ratio':>8}")
    for case in dict.fromkeys(case for _, case in medians):
        a, p = medians["asyncpg", case], medians["psycopg", case]
        print(f"{case:<24}{a:>12,.0f}{p:>12,.0f}{a / p:>8.2f}")
    print(f"asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__}")


if __name__ == "__main__":
    main()
