"""Conveyor's PostgreSQL store against pgqueuer, procrastinate and SAQ's PostgreSQL queue,
on the same PostgreSQL server in the same run.

    python -m bench.bench_postgres [--jobs N] [--one-by-one M] [--repeat R] [--libs a,b]

``scripts/bench-postgres`` installs the peers (each in its own virtualenv under
``bench/.scratch/venvs``) and runs this. It starts a throwaway PostgreSQL
(``initdb`` in a temp dir, a free loopback port, the server's durable defaults:
fsync and synchronous_commit on) and gives every measurement a fresh database.
Each measurement is one child process (``python -m bench.bench_postgres --child
LIB ACTION DSN ...``, run by that library's interpreter):

- ``one``: M sequential enqueues of one job each, timed;
- ``bulk``: one batch call for N jobs, timed, where the library has one;
- ``drain10``, ``drain50``: N jobs enqueued untimed (in batches where the library
  can), then one in-process worker with concurrency C timed from just before it is
  created until all N are done; checks that every job ran exactly once.

Job bodies are no-ops taking one integer. Medians over R repeats per library, then
conveyor's ratio to the best peer. The order of the libraries is reversed on every
other repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ["conveyor", "pgqueuer", "procrastinate", "saq"]
ACTIONS = ["one", "bulk", "drain10", "drain50"]
LABELS = {
    "one": "enqueue one by one",
    "bulk": "enqueue bulk",
    "drain10": "drain C=10",
    "drain50": "drain C=50",
}
DISTRIBUTIONS = {
    "conveyor": ["conveyor", "asyncpg", "msgspec"],
    "pgqueuer": ["pgqueuer", "asyncpg"],
    "procrastinate": ["procrastinate", "psycopg", "psycopg-pool"],
    "saq": ["saq", "psycopg", "psycopg-pool"],
}
NO_BULK = "no batch enqueue API"


# -- the child side: one library, one action -------------------------------------------


class Tally:
    """Job bodies run in this process: in total and per distinct job number."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.ran = 0
        self.seen: set[int] = set()
        self.done = asyncio.Event()

    def body(self, i: int) -> None:
        self.ran += 1
        self.seen.add(i)
        if len(self.seen) >= self.target:
            self.done.set()

    def check(self) -> dict[str, int]:
        if len(self.seen) != self.target:
            raise SystemExit(f"{len(self.seen)} distinct jobs ran, expected {self.target}")
        return {"duplicates": self.ran - len(self.seen)}


async def conveyor_child(action: str, dsn: str, n: int, c: int) -> dict[str, Any]:
    from conveyor import Conveyor

    app = Conveyor(dsn, log_level="WARNING")
    tally = Tally(n)

    @app.task(name="noop")
    async def noop(i: int) -> None:
        tally.body(i)

    async with app:
        start = time.perf_counter()
        if action == "one":
            for i in range(n):
                await noop.enqueue(i)
            return {"seconds": time.perf_counter() - start}
        if action == "bulk":
            await app.enqueue_many([noop.call(i) for i in range(n)])
            return {"seconds": time.perf_counter() - start}
        for first in range(0, n, 5_000):
            await app.enqueue_many([noop.call(i) for i in range(first, min(first + 5_000, n))])
        start = time.perf_counter()
        stats = await app.work(burst=True, concurrency=c)
        elapsed = time.perf_counter() - start
        assert stats.completed == n, stats
        return {"seconds": elapsed, **tally.check()}


async def pgqueuer_child(action: str, dsn: str, n: int, c: int) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import Job, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    queries = Queries.from_asyncpg_connection(conn)
    await queries.install()
    tally = Tally(n)
    start = time.perf_counter()
    if action == "one":
        for i in range(n):
            await queries.enqueue("noop", str(i).encode())
        return {"seconds": time.perf_counter() - start}
    if action == "bulk":
        await queries.enqueue(["noop"] * n, [str(i).encode() for i in range(n)], [0] * n)
        return {"seconds": time.perf_counter() - start}
    for first in range(0, n, 5_000):
        ids = range(first, min(first + 5_000, n))
        await queries.enqueue(["noop"] * len(ids), [str(i).encode() for i in ids], [0] * len(ids))
    worker_conn = await asyncpg.connect(dsn)
    start = time.perf_counter()
    qm = QueueManager(Queries.from_asyncpg_connection(worker_conn))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        assert job.payload is not None
        tally.body(int(job.payload))

    # Its concurrency cap must be at least twice the dequeue batch.
    await qm.run(batch_size=max(1, c // 2), max_concurrent_tasks=c, mode=QueueExecutionMode.drain)
    elapsed = time.perf_counter() - start
    await worker_conn.close()
    await conn.close()
    return {"seconds": elapsed, **tally.check()}


async def procrastinate_child(action: str, dsn: str, n: int, c: int) -> dict[str, Any]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    tally = Tally(n)

    @app.task(name="noop")
    async def noop(i: int) -> None:
        tally.body(i)

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        start = time.perf_counter()
        if action == "one":
            for i in range(n):
                await noop.defer_async(i=i)
            return {"seconds": time.perf_counter() - start}
        if action == "bulk":
            await noop.batch_defer_async(*({"i": i} for i in range(n)))
            return {"seconds": time.perf_counter() - start}
        for first in range(0, n, 5_000):
            await noop.batch_defer_async(*({"i": i} for i in range(first, min(first + 5_000, n))))
        start = time.perf_counter()
        # wait=False: the worker stops once no job is left.
        await app.run_worker_async(concurrency=c, wait=False, install_signal_handlers=False)
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, **tally.check()}


async def saq_child(action: str, dsn: str, n: int, c: int) -> dict[str, Any]:
    from saq import Queue, Worker

    queue = Queue.from_url(dsn)
    await queue.connect()
    tally = Tally(n)
    start = time.perf_counter()
    try:
        if action == "one":
            for i in range(n):
                await queue.enqueue("noop", i=i)
            return {"seconds": time.perf_counter() - start}
        if action == "bulk":
            return {"na": NO_BULK}
        for first in range(0, n, 200):  # untimed; no batch API, so 200 at a time
            await asyncio.gather(
                *(queue.enqueue("noop", i=i) for i in range(first, min(first + 200, n)))
            )

        async def noop(ctx: dict[str, Any], *, i: int) -> None:
            tally.body(i)

        start = time.perf_counter()
        worker = Worker(queue, functions=[("noop", noop)], concurrency=c)
        running = asyncio.create_task(worker.start())
        await asyncio.wait_for(tally.done.wait(), 600)
        while await queue.count("incomplete"):  # finished means stored as finished
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        await worker.stop()
        await asyncio.gather(running, return_exceptions=True)
        return {"seconds": elapsed, **tally.check()}
    finally:
        await queue.disconnect()


CHILDREN = {
    "conveyor": conveyor_child,
    "pgqueuer": pgqueuer_child,
    "procrastinate": procrastinate_child,
    "saq": saq_child,
}


def child_main(lib: str, action: str, dsn: str, n: int) -> None:
    import logging

    logging.disable(logging.WARNING)
    c = int(action.removeprefix("drain")) if action.startswith("drain") else 0
    result = asyncio.run(CHILDREN[lib](action, dsn, n, c))
    print("RESULT " + json.dumps(result), flush=True)


# -- the orchestrator --------------------------------------------------------------------


def python_of(lib: str, venvs: Path) -> str:
    return sys.executable if lib == "conveyor" else str(venvs / f"pg-{lib}" / "bin" / "python")


def versions(lib: str, venvs: Path) -> str:
    code = (
        "import importlib.metadata as m, sys;"
        "print(', '.join(f'{d} {m.version(d)}' for d in sys.argv[1:]))"
    )
    out = subprocess.run(
        [python_of(lib, venvs), "-c", code, *DISTRIBUTIONS[lib]],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def measure(lib: str, action: str, dsn: str, n: int, venvs: Path, timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [python_of(lib, venvs), "-m", "bench.bench_postgres", "--child", lib, action, dsn, str(n)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def fresh_database(admin_dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


def run(args: argparse.Namespace, admin_dsn: str) -> None:
    libs = args.libs.split(",")
    rates: dict[tuple[str, str], list[float]] = {}
    notes: dict[tuple[str, str], str] = {}
    for repeat in range(args.repeat):
        order = libs if repeat % 2 == 0 else list(reversed(libs))
        for action in ACTIONS:
            n = args.one_by_one if action == "one" else args.jobs
            for lib in order:
                dsn = fresh_database(admin_dsn, f"bench_{lib}")
                out = measure(lib, action, dsn, n, args.venvs, args.timeout)
                if "seconds" in out:
                    rates.setdefault((lib, action), []).append(n / out["seconds"])
                    extra = f", {out['duplicates']} ran twice" if out.get("duplicates") else ""
                    print(
                        f"  {lib:<14}{LABELS[action]:<20}{n / out['seconds']:>10,.0f} jobs/s{extra}"
                    )
                else:
                    notes[lib, action] = out.get("na") or f"error: {out.get('error')}"
                    print(f"  {lib:<14}{LABELS[action]:<20}  {notes[lib, action]}")
    print_table(libs, rates, notes, args)


def print_table(
    libs: list[str],
    rates: dict[tuple[str, str], list[float]],
    notes: dict[tuple[str, str], str],
    args: argparse.Namespace,
) -> None:
    print(
        f"\nmedian jobs/s over {args.repeat} repeats"
        f" (N={args.jobs:,}, one by one M={args.one_by_one:,})"
    )
    print("| measurement | " + " | ".join(libs) + " | conveyor / best peer |")
    print("|---" * (len(libs) + 2) + "|")
    for action in ACTIONS:
        cells, peers = [], []
        for lib in libs:
            values = rates.get((lib, action))
            if values:
                median = statistics.median(values)
                cells.append(f"{median:,.0f}")
                if lib != "conveyor":
                    peers.append(median)
            else:
                cells.append("n/a" if notes.get((lib, action)) == NO_BULK else "error")
        ours = rates.get(("conveyor", action))
        ratio = f"{statistics.median(ours) / max(peers):.2f}x" if ours and peers else "-"
        print(f"| {LABELS[action]} | " + " | ".join(cells) + f" | {ratio} |")
    for (lib, action), note in sorted(notes.items()):
        print(f"- {lib}, {LABELS[action]}: {note}")
    for lib in libs:
        print(f"- {versions(lib, args.venvs)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--one-by-one", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--libs", default=",".join(LIBRARIES))
    parser.add_argument("--venvs", type=Path, default=ROOT / "bench" / ".scratch" / "venvs")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    from tests.postgres_server import running_postgres

    # The server's durable defaults (the test server turns fsync off).
    with running_postgres({"fsync": "on", "full_page_writes": "on"}) as server:
        version = subprocess.run(
            ["psql", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"PostgreSQL on 127.0.0.1:{server.port} ({version or 'psql not on PATH'})")
        run(args, server.dsn)


if __name__ == "__main__":
    main()
