"""A SQLite file made by an earlier version gets the columns added since, on open."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from conveyor import Conveyor
from conveyor.stores.sqlite.database import ADDED_COLUMNS


async def test_a_file_without_the_fence_column_gets_it_and_keeps_its_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    app = Conveyor(url, log_level="WARNING")

    @app.task
    async def work() -> str:
        return "done"

    job = await work.enqueue()
    await app.close()
    with closing(sqlite3.connect(tmp_path / "old.db")) as conn:  # as before the column
        for table, column in ADDED_COLUMNS:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")

    app = Conveyor(url, log_level="WARNING")
    app.task(name=job.task)(work.fn)
    try:
        await app.work(burst=True)
        again = await app.jobs.get(job.id)
        assert (again.result, again.fence) == ("done", 1)
    finally:
        await app.close()
