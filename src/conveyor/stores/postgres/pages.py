"""Listings, searches and timelines of the PostgreSQL job store: each one index seek.

A listing seeks ``jobs_page (queue, state, created_at, id)`` at the cursor's
``(created_at, id)`` and reads ``limit + 1`` rows; a listing of every queue does
that for each queue in one statement (a lateral seek per queue) and merges
them. A search walks the index of its driving criterion (``stores/search.py``):
the primary key for an id or a prefix (ids compare by code point, ``COLLATE
"C"``), ``jobs_task``, or ``job_keys_seek`` for a field or an error key; the
other criteria are one expression per row (an index key is a probe of
``job_keys``' primary key), and the walk stops after ``SEARCH_CANDIDATES``
rows. A timeline seeks ``job_events_job``.
"""

from __future__ import annotations

from typing import Any

from conveyor.stores.base import JobEvent, JobEventKind, JobRecord, JobState, Page
from conveyor.stores.postgres.connection import PostgresConnection, Record
from conveyor.stores.postgres.rows import JOB_COLUMNS, RECORD_COLUMNS, job_record
from conveyor.stores.search import (
    SEARCH_CANDIDATES,
    JobQuery,
    Position,
    decode_cursor,
    encode_cursor,
    prefix_end,
    walk,
)

_NEWEST_FIRST = " ORDER BY j.created_at DESC, j.id DESC"


class PostgresPages:
    """The listing and search steps of :class:`~conveyor.stores.postgres.jobs.PostgresJobStore`."""

    db: PostgresConnection

    async def list_page(
        self, queue: str | None, state: JobState, cursor: str | None, limit: int
    ) -> Page:
        after = decode_cursor(cursor)
        params: list[Any] = [state.value, limit + 1]
        where = "j.state = $1"
        if after is not None:
            where += " AND (j.created_at, j.id) < ($3, $4)"
            params += [after.created_at, after.id]
        if queue is not None:
            params.append(queue)
            sql = (
                f"SELECT {JOB_COLUMNS} FROM {{schema}}.jobs j"
                f" WHERE j.queue = ${len(params)} AND {where}{_NEWEST_FIRST} LIMIT $2"
            )
        else:  # one seek per queue, merged
            sql = (
                f"SELECT {JOB_COLUMNS} FROM {{schema}}.queues q CROSS JOIN LATERAL"
                f" (SELECT * FROM {{schema}}.jobs j WHERE j.queue = q.name AND {where}"
                f"{_NEWEST_FIRST} LIMIT $2) j{_NEWEST_FIRST} LIMIT $2"
            )
        rows = await self.db.fetch(sql, *params)
        records = [job_record(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return Page(records)
        last = records[-1]
        return Page(records, encode_cursor(Position(last.created_at, last.id)))

    async def search(self, query: JobQuery, cursor: str | None, limit: int) -> Page:
        kind, value = query.driver()
        after = decode_cursor(cursor)
        params: list[Any] = [value, SEARCH_CANDIDATES + 1]
        if kind == "id":
            sql = "SELECT j.created_at, j.id, {ok} FROM {{schema}}.jobs j WHERE j.id = $1"
        elif kind == "prefix":
            params.append(prefix_end(value))
            sql = "SELECT 0::bigint, j.id, {ok} FROM {{schema}}.jobs j"
            sql += " WHERE j.id >= $1 AND j.id < $3"
            if after is not None:
                params.append(after.id)
                sql += " AND j.id < $4"
            sql += " ORDER BY j.id DESC"
        elif kind == "task":
            sql = "SELECT j.created_at, j.id, {ok} FROM {{schema}}.jobs j WHERE j.task = $1"
            if after is not None:
                params += [after.created_at, after.id]
                sql += " AND (j.created_at, j.id) < ($3, $4)"
            sql += _NEWEST_FIRST
        else:
            sql = (
                "SELECT k.created_at, k.job_id, {ok} FROM {{schema}}.job_keys k"
                " JOIN {{schema}}.jobs j ON j.id = k.job_id WHERE k.key = $1"
            )
            if after is not None:
                params += [after.created_at, after.id]
                sql += " AND (k.created_at, k.job_id) < ($3, $4)"
            sql += " ORDER BY k.created_at DESC, k.job_id DESC"
        ok = _other_criteria(query, params)
        candidates = await self.db.fetch(sql.format(ok=ok) + " LIMIT $2", *params)
        found, stop = walk(candidates, _position, lambda row: bool(row[2]), limit)
        records = await self._records([row[1] for row in found])
        return Page(records, None if stop is None else encode_cursor(stop))

    async def _records(self, job_ids: list[str]) -> list[JobRecord]:
        """The records of ``job_ids``, in that order."""
        if not job_ids:
            return []
        rows = await self.db.fetch(
            f"SELECT {RECORD_COLUMNS} FROM {{schema}}.jobs WHERE id = ANY ($1::text[])", job_ids
        )
        by_id = {row["id"]: job_record(row) for row in rows}
        return [by_id[i] for i in job_ids if i in by_id]

    async def events_of(self, job_id: str, limit: int) -> list[JobEvent]:
        # Events of an earlier job under the same id (removed, then enqueued again) are
        # older than this one's creation.
        rows = await self.db.fetch(
            "SELECT e.kind, e.queue, e.at, e.data FROM {schema}.job_events e"
            " JOIN {schema}.jobs j ON j.id = e.job_id"
            " WHERE e.job_id = $1 AND e.kind <> 'progress' AND e.at >= j.created_at"
            " ORDER BY e.seq DESC LIMIT $2",
            job_id,
            limit,
        )
        return [
            JobEvent(JobEventKind(r["kind"]), job_id, r["queue"], r["at"], r["data"])
            for r in reversed(rows)
        ]


def _position(row: Record) -> Position:
    return Position(row[0], row[1])


def _other_criteria(query: JobQuery, params: list[Any]) -> str:
    """An SQL expression over ``jobs j`` that holds when every criterion but the driving
    one does; its parameters are appended to ``params`` (numbered after those there)."""
    kind, _ = query.driver()
    terms: list[str] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if query.queue is not None:
        terms.append(f"j.queue = {param(query.queue)}")
    if query.state is not None:
        terms.append(f"j.state = {param(query.state.value)}")
    if query.task is not None and kind != "task":
        terms.append(f"j.task = {param(query.task)}")
    if query.job_id_prefix is not None and kind != "prefix":
        low, high = param(query.job_id_prefix), param(prefix_end(query.job_id_prefix))
        terms.append(f"j.id >= {low} AND j.id < {high}")
    for key in query.other_keys():
        terms.append(
            "EXISTS (SELECT 1 FROM {schema}.job_keys o"
            f" WHERE o.job_id = j.id AND o.key = {param(key)})"
        )
    return "(" + " AND ".join(terms or ["true"]) + ")"
