"""What several PostgreSQL steps share: the job record's columns, and inserting jobs.

Every insert of jobs (enqueue, a schedule's fire, a dedupe miss, a flow, an
application's own transaction) goes through ``{schema}.enqueue`` (``sql/functions/enqueue.sql``),
so a job is inserted, its queue recorded and its workers woken in one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.stores.base import JobRecord, JobState, NewJob
from conveyor.stores.postgres.connection import Conn, PostgresConnection, Record
from conveyor.stores.search import job_field_keys, joined_keys

RECORD_COLUMNS = (
    "id, queue, task, state, priority, payload, options, attempts, stalls, max_stalled,"
    " created_at, run_at, started_at, finished_at, progress, result, error, worker,"
    " lease_until, cancel_requested, fence"
)
JOB_COLUMNS = ", ".join(f"j.{c}" for c in RECORD_COLUMNS.split(", "))
""":data:`RECORD_COLUMNS` of a table aliased ``j``."""
"""The columns of a :class:`JobRecord`, in its field order."""

ENQUEUE = (
    "SELECT {schema}.enqueue($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[],"
    " $6::integer[], $7::bigint[], $8::bigint[], $9::integer[], $10::text[], $11::bigint)"
)


def job_record(row: Record) -> JobRecord:
    fields = list(row.values())
    fields[3] = JobState(fields[3])
    return JobRecord(*fields)


def enqueue_args(jobs: Sequence[NewJob], now: int) -> tuple[Any, ...]:
    """The arguments of :data:`ENQUEUE` for ``jobs``: one array per column."""
    return (
        [j.id for j in jobs],
        [j.queue for j in jobs],
        [j.task for j in jobs],
        [j.payload for j in jobs],
        [j.options for j in jobs],
        [j.priority for j in jobs],
        [j.run_at for j in jobs],
        [j.created_at for j in jobs],
        [j.max_stalled for j in jobs],
        [joined_keys(job_field_keys(j.search_keys)) for j in jobs],
        now,
    )


def created_flags(jobs: Sequence[NewJob], inserted: Sequence[str]) -> list[bool]:
    """Per job, whether it was inserted: its id is among ``inserted`` (what ``{schema}.enqueue``
    returned) and did not come earlier in the same call."""
    fresh = set(inserted)
    created = []
    for job in jobs:
        created.append(job.id in fresh)
        fresh.discard(job.id)
    return created


async def insert_jobs(
    conn: Conn, db: PostgresConnection, jobs: Sequence[NewJob], now: int
) -> list[bool]:
    """Insert ``jobs`` in the caller's transaction; per job, False when its id existed."""
    if not jobs:
        return []
    inserted: list[str] = await conn.fetchval(db.sql(ENQUEUE), *enqueue_args(jobs, now))
    return created_flags(jobs, inserted)
