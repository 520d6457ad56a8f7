"""An app for the multi-process schedule tests: each run of a scheduled job appends
its tick (the ``<name>@<tick ms>`` job id's tail) to ``runs-<pid>.txt`` in RUNS_DIR.

Configured by environment: CONVEYOR_URL (the shared SQLite file or Redis server).
Run a worker with ``python -m tests.integration.schedule_worker_app``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from conveyor import Conveyor, current_job

app = Conveyor(log_level="WARNING", keep_completed=0, shutdown_timeout=30)
_runs = Path(os.environ.get("RUNS_DIR", ".")) / f"runs-{os.getpid()}.txt"


@app.task(name="tick")
async def tick() -> None:
    with _runs.open("a") as log:
        log.write(current_job().job_id.rpartition("@")[2] + "\n")


if __name__ == "__main__":
    asyncio.run(app.work(handle_signals=True))
