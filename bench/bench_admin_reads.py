"""Every read the management API and the dashboard make, on a store of 1,000,000 jobs.

    python -m bench.bench_admin_reads --url URL [--jobs N] [--samples S] [--seed X]

``scripts/bench-admin`` runs it on a fresh SQLite file and on a throwaway
redis-server. The store is filled through its own steps, as an application
would fill it (``bench/admin_fill.py``): bulk enqueue of 10 queues x 3 tasks
with searchable fields, then claims and outcomes that complete, fail (five
error classes, messages with words), retry, cancel and leave jobs running,
plus a week of minute history and an audit log. Then each read runs
``--samples`` times with varied arguments (random cursors deep in a listing,
random ids, customers, words...), through the app's clients (``app.jobs``,
``app.history``, ``app.audit``: what the HTTP layer calls), one at a time,
and its p50 / p95 / max are printed against the 100 ms budget of issue 13.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bench.admin_fill import Sample, fill
from conveyor import Conveyor
from conveyor.stores.search import Position, encode_cursor

BUDGET_MS = 100.0


@dataclass
class Result:
    name: str
    times_ms: list[float] = field(default_factory=list)
    note: str = ""

    def row(self) -> str:
        ordered = sorted(self.times_ms)
        p50 = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        verdict = "ok" if p95 <= BUDGET_MS else "OVER"
        return (
            f"{self.name:<46} {p50:>8.2f} {p95:>8.2f} {ordered[-1]:>8.2f}  {verdict:<4} {self.note}"
        )


async def timed(
    name: str, samples: int, call: Callable[[int], Awaitable[Any]], note: str = ""
) -> Result:
    result = Result(name, note=note)
    await call(0)  # a first call warms the connection and the page cache of what it reads
    for n in range(samples):
        started = time.perf_counter()
        await call(n)
        result.times_ms.append((time.perf_counter() - started) * 1000)
    return result


def deep_cursor(sample: Sample, rng: random.Random) -> str:
    """A cursor at a random job of the listing (where a deep page starts)."""
    created_at, job_id = rng.choice(sample.positions)
    return encode_cursor(Position(created_at, job_id))


async def measure(
    app: Conveyor, sample: Sample, samples: int, seed: int, only: str = ""
) -> list[Result]:
    rng = random.Random(seed)
    jobs, history = app.jobs, app.history
    queue = sample.queues[0]
    out: list[Result] = []

    async def add(name: str, call: Callable[[int], Awaitable[Any]], note: str = "") -> None:
        if only not in name:
            return
        out.append(await timed(name, samples, call, note))
        print(f"  {out[-1].row()}", flush=True)

    # Listings: the first page, and pages deep in a state of 500,000 jobs.
    await add("list_page waiting, one queue, first", lambda n: jobs.list_page("waiting", queue))
    await add("list_page waiting, all queues, first", lambda n: jobs.list_page("waiting"))
    await add(
        "list_page waiting, one queue, deep",
        lambda n: jobs.list_page(
            "waiting", rng.choice(sample.queues), cursor=deep_cursor(sample, rng)
        ),
        "cursor at a random job",
    )
    await add(
        "list_page waiting, all queues, deep",
        lambda n: jobs.list_page("waiting", cursor=deep_cursor(sample, rng)),
        "cursor at a random job",
    )
    await add(
        "list_page failed, all queues, limit 200", lambda n: jobs.list_page("failed", limit=200)
    )
    await add("list_page completed, one queue", lambda n: jobs.list_page("completed", queue))

    # Searches, one criterion at a time, then combined.
    await add("search exact id", lambda n: jobs.search(job_id=rng.choice(sample.ids)))
    await add(
        "search id prefix (8 hex)", lambda n: jobs.search(id_prefix=rng.choice(sample.ids)[:8])
    )
    await add(
        "search id prefix + state failed",
        lambda n: jobs.search(id_prefix=rng.choice(sample.ids)[:6], state="failed"),
    )
    await add("search task, all queues", lambda n: jobs.search(task=rng.choice(sample.tasks)))
    await add(
        "search task + queue + state failed",
        lambda n: jobs.search(task=sample.tasks[0], queue=queue, state="failed"),
    )
    await add(
        "search field customer_id",
        lambda n: jobs.search(field=("customer_id", rng.choice(sample.customers))),
        "about 60 jobs each",
    )
    await add(
        "search field order.id",
        lambda n: jobs.search(field=("order.id", rng.choice(sample.orders))),
        "unique",
    )
    await add("search error type", lambda n: jobs.search(error_type=rng.choice(sample.error_types)))
    await add("search error word", lambda n: jobs.search(error_word=rng.choice(sample.error_words)))
    await add(
        "search error type + queue",
        lambda n: jobs.search(
            error_type=rng.choice(sample.error_types), queue=rng.choice(sample.queues)
        ),
    )
    await add(
        "search customer + state failed",
        lambda n: jobs.search(field=("customer_id", rng.choice(sample.customers)), state="failed"),
    )
    await add(
        "search task + state cancelled (sparse)",
        lambda n: jobs.search(task=rng.choice(sample.tasks), state="cancelled"),
        "examines at most 1,000 per call",
    )

    # A job's detail page: its timeline.
    await add("events_of (timeline)", lambda n: jobs.events_of(rng.choice(sample.finished)))

    # The queues page and the overview.
    await add("counts (every queue and state)", lambda n: jobs.counts())
    await add("oldest_waiting", lambda n: app.store.oldest_waiting())
    await add("queues", lambda n: jobs.queues())
    await add("workers", lambda n: jobs.workers())
    await add(
        "clean dry run (10,000 at most)",
        lambda n: jobs.clean(rng.choice(sample.queues), "completed", older_than=3600, dry_run=True),
    )
    await add("history series completed, 60 min", lambda n: history.series("jobs_completed", 60))
    await add(
        "history series failed, 24 h by hour",
        lambda n: history.series("jobs_failed", 1440, step=60),
    )
    await add(
        "history series completed, 7 days by hour",
        lambda n: history.series("jobs_completed", 7 * 1440, step=60),
    )
    await add("history wait p50/p95, 60 min", lambda n: history.percentiles("wait", minutes=60))
    await add(
        "history run p50/p95 one queue, 24 h",
        lambda n: history.percentiles("run", queue=queue, minutes=1440),
    )
    await add(
        "history run p50/p95, 7 days",
        lambda n: history.percentiles("run", minutes=7 * 1440),
    )
    await add(
        "history ratelimit by tier, 60 min", lambda n: history.series("ratelimit_rejected", 60)
    )
    await add("audit page", lambda n: app.audit.page())
    return out


async def run(
    url: str, jobs: int, samples: int, seed: int, sample_file: Path | None, only: str = ""
) -> bool:
    app = Conveyor(url, log_level="WARNING")
    try:
        if sample_file is not None and sample_file.exists():
            await app.open()
            sample = msgspec.json.decode(sample_file.read_bytes(), type=Sample)
            print(f"{url} filled before: {sample.summary}", flush=True)
        else:
            print(f"filling {url} with {jobs:,} jobs ...", flush=True)
            started = time.perf_counter()
            sample = await fill(app, jobs, seed)
            print(f"filled in {time.perf_counter() - started:.0f} s: {sample.summary}", flush=True)
            if sample_file is not None:
                sample_file.write_bytes(msgspec.json.encode(sample))
        print(
            f"\n{'read (' + str(samples) + ' samples each)':<46} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'max ms':>8}  budget {BUDGET_MS:.0f} ms p95"
        )
        results = await measure(app, sample, samples, seed, only)
    finally:
        await app.close()
    over = [
        r.name
        for r in results
        if sorted(r.times_ms)[round(0.95 * (len(r.times_ms) - 1))] > BUDGET_MS
    ]
    print(
        f"\n{len(results) - len(over)} of {len(results)} reads within {BUDGET_MS:.0f} ms p95"
        + (f"; over: {', '.join(over)}" if over else "")
    )
    return not over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="sqlite:///path.db, redis://host:port/db or postgresql://..."
    )
    parser.add_argument("--jobs", "-n", type=int, default=1_000_000)
    parser.add_argument("--samples", "-s", type=int, default=100)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--sample-file",
        type=Path,
        help="where the fill's sample is kept: when it exists, the store (filled by an earlier"
        " run with it) is measured again without filling",
    )
    parser.add_argument("--only", default="", help="measure only the reads whose name has this")
    args = parser.parse_args()
    ok = asyncio.run(run(args.url, args.jobs, args.samples, args.seed, args.sample_file, args.only))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
