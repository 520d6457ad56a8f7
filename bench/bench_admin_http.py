"""Every dashboard page and management API list call over HTTP, on a store of 1,000,000 jobs.

    python -m bench.bench_admin_http [--url URL] [--jobs N] [--samples S]

Fills the store (unless it already holds ``--jobs``) through the store's own
bulk steps: ``--jobs`` jobs over 10 queues, each with a searchable
``customer_id`` (about 100 jobs per customer), created over the last week;
then 50,000 of one queue are claimed and finished by ``exchange`` (two
thirds completed, one third failed with one of three errors). Then a real
``conveyor serve`` (no worker) answers each page and call ``--samples``
times, one request at a time over one keep-alive connection from this
process, with varied arguments (deep cursors at random jobs, random ids,
prefixes and customers); p50 / p95 / max are printed against the 100 ms
budget of issue 13. The default URL is a SQLite file under bench/.scratch;
give ``redis://...`` for Redis, ``postgresql://...`` for PostgreSQL (a
throwaway server: ``python -m bench.with_postgres -- python -m
bench.bench_admin_http --url '{url}'``); ``bench/bench_admin_reads.py``
measures the same reads without HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import msgspec

from conveyor import Conveyor
from conveyor.stores.base import JobState, NewJob, Outcome
from conveyor.stores.search import Position, encode_cursor

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MS = 100.0
QUEUES = [f"q{i}" for i in range(10)]
WORKED = 50_000
BATCH = 5_000
ERRORS = [
    ("SmtpError", "mailbox full"),
    ("TimeoutError", "upstream timed out"),
    ("KeyError", "sku"),
]


async def fill(url: str, total: int, rng: random.Random) -> dict[str, list[str]]:
    """The store's jobs (if it holds fewer than ``total``) and a sample of ids and positions."""
    app = Conveyor(url, configure_logging=False)
    async with app:
        counts = await app.jobs.counts()
        held = sum(sum(by_state.values()) for by_state in counts.values())
        if held < total:
            await _insert(app, total - held, rng)
        ids: list[str] = []
        positions: list[str] = []
        for queue in QUEUES[:3]:
            cursor = None
            for _ in range(rng.randint(5, 40)):
                page = await app.jobs.list_page("waiting", queue, cursor=cursor, limit=200)
                cursor = page.next
            for job in page.jobs[:20]:
                ids.append(job.id)
                position = Position(job.record.created_at, job.id)
                positions.append(encode_cursor(position))
        return {"ids": ids, "positions": positions}


async def _insert(app: Conveyor, count: int, rng: random.Random) -> None:
    started = time.monotonic()
    now = app.clock.now_ms()
    week = 7 * 86_400_000
    customers = max(1, count // 100)
    for first in range(0, count, BATCH):
        jobs = []
        for n in range(first, min(count, first + BATCH)):
            created = now - week + (week * n) // count
            customer = rng.randrange(customers)
            jobs.append(
                NewJob(
                    id=f"{created:012x}{rng.getrandbits(80):020x}",
                    queue=QUEUES[n % len(QUEUES)],
                    task="bench.report",
                    payload=msgspec.json.encode([[customer], {}]),
                    options=b"{}",
                    priority=0,
                    run_at=created,
                    created_at=created,
                    max_stalled=1,
                    search_keys=[f"customer_id={customer}"],
                )
            )
        await app.store.enqueue(jobs)
        print(f"  inserted {first + len(jobs):,} ({time.monotonic() - started:.0f} s)", flush=True)
    finished: list[Outcome] = []
    worked = 0
    while worked < WORKED:
        _, claimed = await app.store.exchange(finished, [QUEUES[0]], 1_000, "bench", 60_000)
        if not claimed:
            break
        at = app.clock.now_ms()
        finished = []
        for i, job in enumerate(claimed):
            failed = i % 3 == 0
            kind, message = ERRORS[i % len(ERRORS)]
            error = msgspec.json.encode({"type": kind, "message": message, "traceback": None})
            finished.append(
                Outcome(
                    id=job.id,
                    token=job.token,
                    queue=job.queue,
                    state=JobState.FAILED if failed else JobState.COMPLETED,
                    finished_at=at,
                    error=error if failed else None,
                    result=None if failed else b"null",
                    expires_at=at + week,
                )
            )
        worked += len(claimed)
    await app.store.exchange(finished, [], 0, "bench", 60_000)
    print(f"  finished {worked:,} jobs of {QUEUES[0]} ({time.monotonic() - started:.0f} s)")


def calls(sample: dict[str, list[str]], rng: random.Random) -> list[tuple[str, object]]:
    """(name, path or a function of the sample number giving one) for each measured call."""
    ids, positions = sample["ids"], sample["positions"]
    q = QUEUES[0]

    def customer() -> int:
        return rng.randrange(10_000)

    return [
        ("page overview", "/dashboard/"),
        ("page queues", "/dashboard/queues"),
        ("page jobs waiting (all queues)", "/dashboard/jobs?state=waiting"),
        ("page jobs failed, one queue", f"/dashboard/jobs?state=failed&queue={q}"),
        (
            "page jobs waiting, deep cursor",
            lambda: f"/dashboard/jobs?state=waiting&cursor={rng.choice(positions)}",
        ),
        ("page job detail", lambda: f"/dashboard/jobs/{rng.choice(ids)}"),
        ("page search by id prefix", lambda: f"/dashboard/jobs?id={rng.choice(ids)[:10]}"),
        ("page search by field", lambda: f"/dashboard/jobs?field=customer_id={customer()}"),
        ("page dead letters", "/dashboard/dead-letters"),
        ("page schedules", "/dashboard/schedules"),
        ("page cache", "/dashboard/cache"),
        ("page rate limits", "/dashboard/rate-limits"),
        ("page audit", "/dashboard/audit"),
        ("api queues", "/api/v1/queues"),
        ("api queues/metrics (60 min)", "/api/v1/queues/metrics"),
        ("api queues/{q}/metrics", f"/api/v1/queues/{q}/metrics"),
        ("api jobs waiting, all queues", "/api/v1/jobs?state=waiting"),
        (
            "api jobs waiting, deep cursor",
            lambda: f"/api/v1/jobs?state=waiting&cursor={rng.choice(positions)}",
        ),
        ("api queues/{q}/jobs failed, 200", f"/api/v1/queues/{q}/jobs?state=failed&limit=200"),
        ("api jobs/{id}", lambda: f"/api/v1/jobs/{rng.choice(ids)}"),
        ("api search id", lambda: f"/api/v1/jobs/search?id={rng.choice(ids)}"),
        ("api search id prefix", lambda: f"/api/v1/jobs/search?id_prefix={rng.choice(ids)[:8]}"),
        ("api search task + state", "/api/v1/jobs/search?task=bench.report&state=failed"),
        ("api search error type", "/api/v1/jobs/search?error_type=SmtpError"),
        ("api search field", lambda: f"/api/v1/jobs/search?field=customer_id={customer()}"),
        ("api events/groups", "/api/v1/events/groups"),
        ("api dead letters", "/api/v1/events/dead-letters"),
        ("api schedules", "/api/v1/schedules"),
        ("api workers", "/api/v1/workers"),
        ("api audit", "/api/v1/audit"),
    ]


def measure(base: str, sample: dict[str, list[str]], samples: int, seed: int) -> bool:
    rng = random.Random(seed)
    within = True
    print(f"\n{'call':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  budget")
    with httpx.Client(base_url=base, timeout=30) as client:
        for name, target in calls(sample, rng):
            client.get(_path(target)).raise_for_status()  # warm the path once
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                response = client.get(_path(target))
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code >= 400:
                    raise SystemExit(f"{name}: {response.status_code} {response.text[:300]}")
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            verdict = "ok" if p95 <= BUDGET_MS else "OVER"
            within = within and p95 <= BUDGET_MS
            p50 = statistics.median(times)
            print(f"{name:<36} {p50:>8.1f} {p95:>8.1f} {times[-1]:>8.1f}  {verdict}", flush=True)
    return within


def _path(target: object) -> str:
    return str(target()) if callable(target) else str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    scratch = ROOT / "bench" / ".scratch" / "admin-http"
    parser.add_argument("--url", default=f"sqlite:///{scratch / 'conveyor.db'}")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--port", type=int, default=18_613)
    args = parser.parse_args()
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"store {args.url.split('@')[-1]}, {args.jobs:,} jobs")
    sample = asyncio.run(fill(args.url, args.jobs, random.Random(args.seed)))
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    env = {**os.environ, "BENCH_ADMIN_URL": args.url, "PYTHONPATH": path}
    command = [sys.executable, "-m", "conveyor", "serve", "bench.admin_http_app:app"]
    server = subprocess.Popen(
        [*command, "--port", str(args.port), "--no-worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("conveyor serve did not start")
            time.sleep(0.1)
        within = measure(base, sample, args.samples, args.seed)
    finally:
        server.terminate()
        server.wait(30)
    print("\nevery call within 100 ms p95" if within else "\nsome calls are over 100 ms p95")


if __name__ == "__main__":
    main()
