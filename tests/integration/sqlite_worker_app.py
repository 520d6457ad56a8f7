"""An app for the multi-process tests: each run of a job appends its number to a file.

Configured by environment: CONVEYOR_URL (the shared store: a SQLite file, PostgreSQL) and
RUNS_DIR (where each process writes ``runs-<pid>.txt``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from conveyor import Conveyor

app = Conveyor(
    log_level="WARNING",
    lease_seconds=float(os.environ.get("LEASE_SECONDS", "30")),
    sweep_interval=float(os.environ.get("SWEEP_INTERVAL", "5")),
    keep_completed=1_000_000,
    shutdown_timeout=float(os.environ.get("SHUTDOWN_TIMEOUT", "30")),
)
_runs = Path(os.environ.get("RUNS_DIR", ".")) / f"runs-{os.getpid()}.txt"


def _record_run(n: int) -> None:
    with _runs.open("a") as log:
        log.write(f"{n}\n")


@app.task(name="record")
async def record(n: int) -> int:
    _record_run(n)
    return n


@app.task(name="slow_record")
async def slow_record(n: int, seconds: float) -> int:
    (_runs.parent / f"started-{n}-{os.getpid()}").touch()
    await asyncio.sleep(seconds)
    _record_run(n)
    return n


if __name__ == "__main__":
    burst = "--burst" in sys.argv
    stats = asyncio.run(app.work(concurrency=20, burst=burst, handle_signals=True))
    print(stats.completed, flush=True)
