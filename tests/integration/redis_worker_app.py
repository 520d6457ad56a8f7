"""An app for the multi-process server tests: each run of a job appends its number to a file.

Configured by environment: CONVEYOR_URL (the shared Redis or PostgreSQL store), RUNS_DIR
(where each process writes ``runs-<pid>.txt``, and ``starts-<pid>.txt`` with
the number of every job it began), and the knobs below.
Run a worker with ``python -m tests.integration.redis_worker_app [--burst]``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

from conveyor import Conveyor

CONCURRENCY = int(os.environ.get("CONCURRENCY", "20"))

app = Conveyor(
    log_level="WARNING",
    lease_seconds=float(os.environ.get("LEASE_SECONDS", "30")),
    sweep_interval=float(os.environ.get("SWEEP_INTERVAL", "5")),
    max_stalled=int(os.environ.get("MAX_STALLED", "1")),
    keep_completed=1_000_000,
    shutdown_timeout=float(os.environ.get("SHUTDOWN_TIMEOUT", "30")),
)
_runs_dir = Path(os.environ.get("RUNS_DIR", "."))
_runs = _runs_dir / f"runs-{os.getpid()}.txt"
_starts = _runs_dir / f"starts-{os.getpid()}.txt"


def _append(path: Path, n: int) -> None:
    with path.open("a") as log:
        log.write(f"{n}\n")


def _record_run(n: int) -> None:
    _append(_runs, n)


@app.task(name="record")
async def record(n: int) -> int:
    _append(_starts, n)
    await asyncio.sleep(random.uniform(0.001, 0.005))
    _record_run(n)
    return n


@app.task(name="slow_record")
async def slow_record(n: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    _record_run(n)
    return n


if __name__ == "__main__":
    burst = "--burst" in sys.argv
    stats = asyncio.run(app.work(concurrency=CONCURRENCY, burst=burst, handle_signals=True))
    print(stats.completed, flush=True)
