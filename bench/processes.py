"""Drain with 1 and with 2 worker processes, on Redis and on SQLite, side by side.

    python -m bench.processes --redis redis://127.0.0.1:6379/0 --sqlite-dir /tmp/x \\
        [--jobs N] [--concurrency C] [--repeat R]
    scripts/bench-processes          # a throwaway redis-server and a temp directory

For each store and each P in (1, 2), R times (P's order alternating between
repeats): an empty store (FLUSHALL, or a new SQLite file); ``python -m conveyor
worker bench.processes:app --processes P --concurrency C`` is started
(``--processes 1`` is the plain in-process worker, ``2`` the supervisor over
two) and, once all P workers heartbeat into the store (started, imported,
connected, idle), N no-op jobs are enqueued in one ``enqueue_many`` (one
transaction, one script). The command gets SIGTERM once the store shows N
completed jobs, and must exit 0. Two rates per run:

- drain: N / (the last job's ``finished_at`` - the first job's ``started_at``),
  as the store recorded them: the work itself;
- seen: N / (from ``enqueue_many`` returning to the producer seeing N completed,
  polling the counts every 20 ms).

Checks: exit code 0, N jobs completed and none in any other state. The table
shows medians and the ratio of 2 processes to 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from conveyor import Conveyor, JobState

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = (1, 2)

app = Conveyor(log_level="WARNING", keep_completed=1_000_000)


@app.task(name="bench.noop")
async def noop(i: int) -> None:
    return None


class BenchError(RuntimeError):
    """A run did not do what it was asked to."""


def _empty(url: str) -> None:
    if url.startswith("redis"):
        import redis

        with redis.Redis.from_url(url) as client:
            client.flushall()


async def _run(url: str, processes: int, jobs: int, concurrency: int) -> tuple[float, float]:
    """One drain: (drain jobs/s from the store's timestamps, jobs/s as the producer saw it)."""
    _empty(url)
    command = [sys.executable, "-m", "conveyor", "worker", "bench.processes:app"]
    command += ["--processes", str(processes), "--concurrency", str(concurrency)]
    env = {**os.environ, "CONVEYOR_URL": url}
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        async with Conveyor(url, log_level="WARNING", keep_completed=1_000_000) as producer:
            task = producer.task(name="bench.noop")(noop.fn)
            await _until(lambda: _workers_are(producer, processes), worker)
            await producer.enqueue_many([task.call(i) for i in range(jobs)])
            enqueued = time.perf_counter()
            await _until(lambda: _completed_are(producer, jobs), worker, interval=0.02)
            seen = time.perf_counter() - enqueued
            worker.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(worker.wait, 60)
            if code != 0:
                raise BenchError(f"{' '.join(command)} exited {code}")
            return jobs / await _span(producer, jobs), jobs / seen
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


async def _workers_are(producer: Conveyor, count: int) -> bool:
    return len(await producer.store.workers()) >= count


async def _completed_are(producer: Conveyor, jobs: int) -> bool:
    counts = (await producer.jobs.counts()).get("default", {})
    return counts.get(JobState.COMPLETED, 0) >= jobs


async def _until(
    condition: Callable[[], Awaitable[bool]],
    worker: subprocess.Popen[bytes],
    interval: float = 0.05,
    timeout: float = 600,
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise BenchError("timed out")
        await asyncio.sleep(interval)


async def _span(reader: Conveyor, jobs: int) -> float:
    """Seconds from the first claim to the last finish, as the store recorded them."""
    counts = (await reader.jobs.counts()).get("default", {})
    others = {s.value: n for s, n in counts.items() if n and s is not JobState.COMPLETED}
    if counts.get(JobState.COMPLETED, 0) != jobs or others:
        raise BenchError(f"{counts.get(JobState.COMPLETED, 0)} completed, and {others}")
    started: list[int] = []
    finished: list[int] = []
    for offset in range(0, jobs, 1000):
        for job in await reader.jobs.list(JobState.COMPLETED, offset=offset, limit=1000):
            started.append(job.record.started_at or 0)
            finished.append(job.record.finished_at or 0)
    return max(0.001, (max(finished) - min(started)) / 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.processes", description=__doc__)
    parser.add_argument("--redis", help="a Redis URL (its database is flushed)")
    parser.add_argument("--sqlite-dir", help="where the SQLite files go (default: a temp dir)")
    parser.add_argument("--jobs", "-n", type=int, default=20_000)
    parser.add_argument("--concurrency", "-c", type=int, default=50)
    parser.add_argument("--repeat", "-r", type=int, default=3)
    opts = parser.parse_args(argv)
    base = Path(opts.sqlite_dir or tempfile.mkdtemp(prefix="conveyor-bench-processes-"))
    stores = [("sqlite", None)] + ([("redis", opts.redis)] if opts.redis else [])
    print(
        f"N={opts.jobs:,} no-op jobs, concurrency {opts.concurrency} per process,"
        f" R={opts.repeat} (medians); {os.cpu_count()} cores",
        flush=True,
    )
    rates: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for repeat in range(opts.repeat):
            order = PROCESSES if repeat % 2 == 0 else PROCESSES[::-1]
            for name, url in stores:
                for processes in order:
                    target = url or f"sqlite:///{base / f'run-{repeat}-{processes}.db'}"
                    found = asyncio.run(_run(target, processes, opts.jobs, opts.concurrency))
                    rates.setdefault((name, processes), []).append(found)
            print(f"  repeat {repeat + 1}/{opts.repeat} done", flush=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    header = (
        f"{'store':<8}{'processes':>10}{'drain jobs/s':>14}{'seen jobs/s':>13}{'x 1 process':>13}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for name, _url in stores:
        one = statistics.median(r[0] for r in rates[(name, 1)])
        for processes in PROCESSES:
            runs = rates[(name, processes)]
            drain = statistics.median(r[0] for r in runs)
            seen = statistics.median(r[1] for r in runs)
            print(f"{name:<8}{processes:>10}{drain:>14,.0f}{seen:>13,.0f}{drain / one:>12.2f}x")
    print("\nper run (drain / seen jobs/s):")
    for (name, processes), runs in sorted(rates.items()):
        shown = "  ".join(f"{d:,.0f}/{w:,.0f}" for d, w in runs)
        print(f"  {name:<7} P={processes}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
