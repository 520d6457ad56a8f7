"""Listings, searches and timelines of the SQLite job store: each one index seek.

A listing seeks ``jobs_page`` at the cursor's ``(created_at, id)`` and
reads ``limit`` rows (a listing of every queue: that, for each queue, merged). A search walks the
index of its driving criterion (``stores/search.py``): the unique index on
``id`` for a prefix, ``jobs_task``, or ``job_keys_seek`` for a field or an
error key; the other criteria are one expression per row (an index key is a
probe of ``job_keys``' primary key), and the walk stops after
``SEARCH_CANDIDATES`` rows. A timeline seeks ``job_events_job``.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from conveyor.stores.base import JobEvent, JobEventKind, JobRecord, JobState, Page
from conveyor.stores.search import (
    SEARCH_CANDIDATES,
    JobQuery,
    Position,
    decode_cursor,
    encode_cursor,
    prefix_end,
    walk,
)
from conveyor.stores.sqlite.database import Database, on_connection
from conveyor.stores.sqlite.rows import CHUNK, RECORD_COLUMNS, job_record

Row = tuple[int, str, int]
"""A candidate of a search: created_at, id, and whether the other criteria hold."""


class SqlitePages:
    """The listing and search steps of :class:`~conveyor.stores.sqlite.jobs.SqliteJobStore`."""

    db: Database

    @on_connection
    def list_page(self, queue: str | None, state: JobState, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor)
        conn = self.db.conn
        queues = [queue] if queue is not None else [name for (name,) in conn.execute(_QUEUES)]
        where = "queue = ? AND state = ?"
        params: list[Any] = [state.value]
        if after is not None:
            where += " AND (created_at, id) < (?, ?)"
            params += [after.created_at, after.id]
        sql = (
            f"SELECT {RECORD_COLUMNS} FROM jobs WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        # One seek of jobs_page per queue; their rows, each newest first, merged.
        pages = [conn.execute(sql, [name, *params, limit + 1]).fetchall() for name in queues]
        merged = heapq.merge(*pages, key=_time_and_id, reverse=True)
        rows = list(itertools.islice(merged, limit + 1))
        records = [job_record(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return Page(records)
        last = records[-1]
        return Page(records, encode_cursor(Position(last.created_at, last.id)))

    @on_connection
    def search(self, query: JobQuery, cursor: str | None, limit: int) -> Page:
        kind, value = query.driver()
        after = decode_cursor(cursor)
        ok, ok_params = _other_criteria(query)
        if kind == "id":
            sql = f"SELECT created_at, id, {ok} FROM jobs WHERE id = ?"
            params: list[Any] = [*ok_params, value]
        elif kind == "prefix":
            sql = f"SELECT 0, id, {ok} FROM jobs WHERE id >= ? AND id < ?"
            params = [*ok_params, value, prefix_end(value)]
            if after is not None:
                sql += " AND id < ?"
                params.append(after.id)
            sql += " ORDER BY id DESC"
        elif kind == "task":
            sql = f"SELECT created_at, id, {ok} FROM jobs WHERE task = ?"
            params = [*ok_params, value]
            if after is not None:
                sql += " AND (created_at, id) < (?, ?)"
                params += [after.created_at, after.id]
            sql += " ORDER BY created_at DESC, id DESC"
        else:
            sql = (
                f"SELECT k.created_at, k.job_id, {ok} FROM job_keys k"
                " JOIN jobs ON jobs.id = k.job_id WHERE k.key = ?"
            )
            params = [*ok_params, value]
            if after is not None:
                sql += " AND (k.created_at, k.job_id) < (?, ?)"
                params += [after.created_at, after.id]
            sql += " ORDER BY k.created_at DESC, k.job_id DESC"
        candidates = self.db.conn.execute(f"{sql} LIMIT ?", [*params, SEARCH_CANDIDATES + 1])
        found, stop = walk(candidates, _position, lambda row: bool(row[2]), limit)
        records = self._records([row[1] for row in found])
        return Page(records, None if stop is None else encode_cursor(stop))

    def _records(self, job_ids: list[str]) -> list[JobRecord]:
        """The records of ``job_ids``, in that order."""
        by_id: dict[str, JobRecord] = {}
        for first in range(0, len(job_ids), CHUNK):
            chunk = job_ids[first : first + CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.db.conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM jobs WHERE id IN ({marks})", chunk
            ):
                by_id[row[0]] = job_record(row)
        return [by_id[i] for i in job_ids if i in by_id]

    @on_connection
    def events_of(self, job_id: str, limit: int) -> list[JobEvent]:
        rows = self.db.conn.execute(
            "SELECT e.kind, e.queue, e.at, e.data FROM job_events e"
            " JOIN jobs j ON j.id = e.job_id"
            " WHERE e.job_id = ? AND e.kind != 'progress' AND e.at >= j.created_at"
            " ORDER BY e.seq DESC LIMIT ?",
            (job_id, limit),
        ).fetchall()
        return [
            JobEvent(JobEventKind(kind), job_id, queue, at, data)
            for kind, queue, at, data in reversed(rows)
        ]


_QUEUES = "SELECT name FROM queues"
_CREATED_AT = RECORD_COLUMNS.split(", ").index("created_at")


def _time_and_id(row: tuple[Any, ...]) -> tuple[int, str]:
    return row[_CREATED_AT], row[0]


def _position(row: Row) -> Position:
    return Position(row[0], row[1])


def _other_criteria(query: JobQuery) -> tuple[str, list[Any]]:
    """An SQL expression over ``jobs`` that holds when every criterion but the driving
    one does, and its parameters."""
    kind, _ = query.driver()
    terms: list[str] = []
    params: list[Any] = []
    if query.queue is not None:
        terms.append("jobs.queue = ?")
        params.append(query.queue)
    if query.state is not None:
        terms.append("jobs.state = ?")
        params.append(query.state.value)
    if query.task is not None and kind != "task":
        terms.append("jobs.task = ?")
        params.append(query.task)
    if query.job_id_prefix is not None and kind != "prefix":
        terms.append("jobs.id >= ? AND jobs.id < ?")
        params += [query.job_id_prefix, prefix_end(query.job_id_prefix)]
    for key in query.other_keys():
        terms.append("EXISTS (SELECT 1 FROM job_keys o WHERE o.job_id = jobs.id AND o.key = ?)")
        params.append(key)
    return "(" + " AND ".join(terms or ["1"]) + ")", params
