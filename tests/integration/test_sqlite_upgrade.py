"""A SQLite file made by an earlier version gets what was added since, on open: columns,
indexes, tables, and the job counts of the jobs it holds."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from conveyor import Conveyor, JobState
from conveyor.stores.sqlite.database import ADDED_COLUMNS

ADDED_SINCE = [
    "DROP TRIGGER job_keys_deleted",
    "DROP TABLE job_keys",
    "DROP TABLE job_counts",
    "DROP TABLE history",
    "DROP TABLE history_hours",
    "DROP TABLE audit",
    "DROP INDEX jobs_page",
    "DROP INDEX jobs_task",
    "DROP INDEX job_events_job",
    "CREATE INDEX jobs_listing ON jobs (queue, state, created_at)",
    "CREATE INDEX jobs_listing_all ON jobs (state, created_at, seq)",
]
"""What turns a file of this version back into one of before issue 13 (with ADDED_COLUMNS)."""


async def test_an_older_file_gets_what_was_added_and_keeps_its_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    app = Conveyor(url, log_level="WARNING")

    @app.task
    async def work(n: int) -> str:
        return "done"

    jobs = await app.enqueue_many([work.call(n) for n in range(3)])
    await app.close()
    with closing(sqlite3.connect(tmp_path / "old.db")) as conn:  # as before
        for statement in ADDED_SINCE:
            conn.execute(statement)
        for table, column in ADDED_COLUMNS:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")

    app = Conveyor(url, log_level="WARNING")
    app.task(name=jobs[0].task)(work.fn)
    try:
        assert (await app.jobs.counts())["default"][JobState.WAITING] == 3
        found = await app.jobs.search(task=jobs[0].task)
        assert sorted(j.id for j in found.jobs) == sorted(j.id for j in jobs)
        await app.work(burst=True)
        again = await app.jobs.get(jobs[0].id)
        assert (again.result, again.fence) == ("done", 1)
        counts = (await app.jobs.counts())["default"]
        assert (counts[JobState.WAITING], counts[JobState.COMPLETED]) == (0, 3)
    finally:
        await app.close()
