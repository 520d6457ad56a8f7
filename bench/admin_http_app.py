"""The app ``bench/bench_admin_http.py`` serves: its store from ``BENCH_ADMIN_URL``."""

from __future__ import annotations

import os

from conveyor import Conveyor

app = Conveyor(
    os.environ.get("BENCH_ADMIN_URL", "memory://"), log_format="json", log_level="WARNING"
)


@app.task(name="bench.report", search=["customer_id"])
async def report(customer_id: int) -> None:
    """Never run here: the jobs are written by the fill, the server runs no worker."""
