"""An app for the multi-process queue-limit tests: each run writes its start and end times.

Each worker runs one job at a time, so a queue limit of 2 is the only thing
that keeps three processes from running three at once. Configured by
environment: CONVEYOR_URL (the shared store) and RUNS_DIR (where each process
writes ``spans-<pid>.txt``: one ``start end`` line per run, in seconds of
``time.time()``). Run a worker with
``python -m tests.integration.limits_worker_app``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conveyor import Conveyor

app = Conveyor(log_level="WARNING", keep_completed=100_000, poll_interval=0.01)
_spans = Path(os.environ.get("RUNS_DIR", ".")) / f"spans-{os.getpid()}.txt"


@app.task(name="hold", queue="limited")
async def hold(seconds: float) -> None:
    start = time.time()
    await asyncio.sleep(seconds)
    with _spans.open("a") as log:
        log.write(f"{start} {time.time()}\n")


if __name__ == "__main__":
    asyncio.run(app.work(concurrency=1, handle_signals=True))
