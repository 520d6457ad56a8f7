"""Listings, searches and timelines of the Redis job store.

Indexes are per queue (their keys share the queue's hash tag), so a page of
one queue is one ``pages.lua`` script: it seeks the index at the cursor
(``ZCOUNT`` then a binary search among equal scores, or ``BYLEX`` for ids),
walks it newest first, checks the other criteria on each entry and returns
the matches with their hashes. A page of every queue runs that script on each
queue at once and merges the answers (``stores/search.py``: ``merge_pages``),
reading the hashes of the merged page only. A timeline is a field of the
job's hash, ``timeline`` (one event a line), written by ``emit`` in ``lua/lib.lua``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.stores.base import JobEvent, JobEventKind, JobRecord, JobState, Page
from conveyor.stores.redis.admin import job_record, read_hashes
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import job_key
from conveyor.stores.search import (
    SEARCH_CANDIDATES,
    JobQuery,
    Position,
    decode_cursor,
    encode_cursor,
    merge_pages,
)

Match = tuple[Position, str, dict[bytes, bytes] | None]
"""One match of one queue: where it sits in the index, its queue, its hash (if read)."""


class RedisPages:
    """The listing and search steps of :class:`~conveyor.stores.redis.jobs.RedisJobStore`."""

    conn: RedisConnection

    async def list_page(
        self, queue: str | None, state: JobState, cursor: str | None, limit: int
    ) -> Page:
        walk = _Walk(f"state:{state.value}", "", limit, limit, ("", "", ""), ())
        queues = [queue] if queue is not None else await self.conn.all_queues()
        return await self._page(walk, queues, decode_cursor(cursor))

    async def search(self, query: JobQuery, cursor: str | None, limit: int) -> Page:
        kind, value = query.driver()
        index = {"id": "id", "prefix": "ids", "task": f"task:{value}", "key": f"search:{value}"}
        filters = (
            "" if query.state is None else query.state.value,
            query.task if query.task is not None and kind != "task" else "",
            query.job_id_prefix if query.job_id_prefix is not None and kind != "prefix" else "",
        )
        walk = _Walk(
            index[kind],
            value if kind in ("id", "prefix") else "",
            limit,
            SEARCH_CANDIDATES,
            filters,
            tuple(query.other_keys()),
        )
        if query.queue is not None:
            queues = [query.queue]
        elif kind == "id":
            found = await self.conn.locate(value)
            queues = [] if found is None else [found]
        else:
            queues = await self.conn.all_queues()
        return await self._page(walk, queues, decode_cursor(cursor))

    async def _page(self, walk: _Walk, queues: list[str], after: Position | None) -> Page:
        if len(queues) == 1:  # the script reads the hashes too: one round trip
            (matches, stop) = await self._walk_queue(walk, queues[0], after, fields=True)
            records = [_record(m) for m in matches]
            return Page([r for r in records if r], None if stop is None else encode_cursor(stop))
        pages = await asyncio.gather(*(self._walk_queue(walk, q, after, False) for q in queues))
        merged, stop = merge_pages(pages, lambda m: m[0], walk.limit)
        rows = await read_hashes(self.conn, [(m[1], _id(m)) for m in merged])
        records = [_record((m[0], m[1], row)) for m, row in zip(merged, rows, strict=True)]
        return Page([r for r in records if r], None if stop is None else encode_cursor(stop))

    async def _walk_queue(
        self, walk: _Walk, queue: str, after: Position | None, fields: bool
    ) -> tuple[list[Match], Position | None]:
        args: list[Any] = [walk.index, walk.value]
        args += ["", ""] if after is None else [after.created_at, after.id]
        args += [walk.limit, walk.budget, int(fields), *walk.filters, *walk.keys]
        found, stop_at, stop_id = await self.conn.run_script("pages", queue, args)
        matches: list[Match] = []
        for at, job_id, flat in found:
            raw = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)} if fields else None
            matches.append((Position(int(at), job_id.decode()), queue, raw))
        stop = Position(int(stop_at), stop_id.decode()) if stop_id else None
        return matches, stop

    async def events_of(self, job_id: str, limit: int) -> list[JobEvent]:
        queue = await self.conn.locate(job_id)
        if queue is None:
            return []
        text = await self.conn.call(self.conn.client.hget, job_key(queue, job_id), "timeline")
        lines = text.split(b"\n")[-limit:] if text else []
        events = []
        for line in lines:
            at, kind, data = line.split(b"\t", 2)
            events.append(
                JobEvent(JobEventKind(kind.decode()), job_id, queue, int(at), data or None)
            )
        return events


@dataclass(frozen=True, slots=True)
class _Walk:
    """What ``pages.lua`` is asked for, whatever the queue."""

    index: str
    value: str
    limit: int
    budget: int
    filters: tuple[str, str, str]
    """State, task and id prefix the job must have ("" for any)."""
    keys: Sequence[str]
    """Index keys the job must have besides the one walked."""


def _id(match: Match) -> str:
    return match[0].id


def _record(match: Match) -> JobRecord | None:
    position, queue, raw = match
    return job_record(position.id, queue, raw) if raw else None
