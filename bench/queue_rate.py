"""Does a queue's rate limit hold across worker processes, and is it reached?

Sets ``rate=(R, 1 s)`` on a queue, enqueues enough no-op jobs for more than
``--seconds`` of work, starts ``--workers`` worker processes on the same store
and waits until every job completed. Then, from the jobs' start times as the
store recorded them at claim (``started_at``, ms), it reports:

- the achieved rate over a ``--seconds`` window that starts one second after
  the first start (so the first window's burst of R claims is not counted);
- the busiest 1-s window of the whole run (the limit says: never above R).

Goal (issue 4): with R = 100 and 3 processes, the rate over 10 s is within
[95, 100] jobs/s. Exit status 1 when it is not, or a 1-s window holds more than R.

    python -m bench.queue_rate --url redis://127.0.0.1:6379/0
    python -m bench.queue_rate --url sqlite:////tmp/rate.db
    scripts/bench-rate       # both, on a throwaway redis-server and a temp file
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from conveyor import Conveyor, JobState

QUEUE = "rated"
ROOT = Path(__file__).resolve().parents[1]

app = Conveyor(log_level="WARNING", keep_completed=1_000_000)


@app.task(name="bench.rated_noop", queue=QUEUE)
async def noop() -> None:
    return None


async def _drain(url: str, rate: int, seconds: float, workers: int) -> list[int]:
    jobs = int(rate * (seconds + 3))
    env = {**os.environ, "CONVEYOR_URL": url}
    async with Conveyor(url, log_level="WARNING", keep_completed=1_000_000) as producer:
        task = producer.task(name="bench.rated_noop", queue=QUEUE)(noop.fn)
        await producer.jobs.set_queue_limits(QUEUE, rate=(rate, 1.0))
        for start in range(0, jobs, 1000):
            await producer.enqueue_many([task.call() for _ in range(min(1000, jobs - start))])
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.queue_rate", "--worker"], cwd=ROOT, env=env
            )
            for _ in range(workers)
        ]
        try:
            deadline = time.monotonic() + seconds * 3 + 30
            while time.monotonic() < deadline:
                counts = (await producer.jobs.counts()).get(QUEUE, {})
                if counts.get(JobState.COMPLETED, 0) >= jobs:
                    break
                await asyncio.sleep(0.2)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
        starts: list[int] = []
        cursor: str | None = None
        while True:
            page = await producer.store.list_page(QUEUE, JobState.COMPLETED, cursor, 200)
            starts += [r.started_at for r in page.records if r.started_at is not None]
            if (cursor := page.next) is None:
                break
    if len(starts) != jobs:
        raise SystemExit(f"only {len(starts)} of {jobs} jobs completed")
    return sorted(starts)


def _busiest_window(starts: list[int], window_ms: int) -> int:
    most, first = 0, 0
    for last, at in enumerate(starts):
        while starts[first] <= at - window_ms:
            first += 1
        most = max(most, last - first + 1)
    return most


def report(url: str, rate: int, seconds: float, workers: int) -> bool:
    starts = asyncio.run(_drain(url, rate, seconds, workers))
    begin = starts[0] + 1000
    end = begin + int(seconds * 1000)
    inside = sum(1 for at in starts if begin <= at < end)
    achieved = inside / seconds
    busiest = _busiest_window(starts, 1000)
    ok = rate * 0.95 <= achieved <= rate and busiest <= rate
    store = url.split(":", 1)[0]
    print(
        f"{store}: {workers} worker processes, limit {rate}/s, {len(starts)} jobs over"
        f" {(starts[-1] - starts[0]) / 1000:.2f} s; rate over {seconds:g} s = {achieved:.2f}/s;"
        f" busiest 1-s window = {busiest}; within [{rate * 0.95:g}, {rate}]: {ok}",
        flush=True,
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_rate", description=__doc__)
    parser.add_argument("--url", action="append", help="store URL (repeatable)")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(app.work(queues=[QUEUE], handle_signals=True))
        return 0
    results = [report(url, args.rate, args.seconds, args.workers) for url in args.url or []]
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
