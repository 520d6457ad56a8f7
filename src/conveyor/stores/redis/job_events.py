"""Reading job events on Redis: a capped stream per queue (``cv:{q}:events``).

A cursor is JSON: a start position, and the last id read of each queue's
stream, so a reader of several queues resumes each where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor.stores.base import JobEvent, JobEventKind
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import queue_prefix

_EVENT_POLL_SECONDS = 0.05
"""On a cluster, how often a reader of several queues' streams looks again."""


class _EventCursor(msgspec.Struct):
    """Where a reader is in each queue's stream; a queue it has not read starts at ``start``."""

    start: str
    at: dict[str, str] = {}


_CURSOR_DECODER = msgspec.json.Decoder(_EventCursor)


class RedisJobEvents:
    """The job-event reads of :class:`~conveyor.stores.redis.jobs.RedisJobStore`."""

    conn: RedisConnection

    async def events_start(self) -> str:
        seconds, micros = await self.conn.call(self.conn.client.time)
        # Stream ids are server ms; XREAD returns ids after the cursor, so start just
        # before this ms: an event written in it (even as <ms>-0) is not skipped.
        start = f"{int(seconds) * 1000 + int(micros) // 1000 - 1}-{2**64 - 1}"
        return msgspec.json.encode(_EventCursor(start)).decode()

    async def read_events(
        self, cursor: str, queues: Sequence[str] | None, limit: int, block: float
    ) -> tuple[str, list[JobEvent]]:
        position = _CURSOR_DECODER.decode(cursor)
        names = list(queues) if queues is not None else await self.conn.all_queues()
        streams = {f"{queue_prefix(q)}events": position.at.get(q, position.start) for q in names}
        if not streams:
            await asyncio.sleep(min(block, _EVENT_POLL_SECONDS))
            return cursor, []
        block = min(block, self.conn.timeout / 2)
        if self.conn.is_cluster and len(streams) > 1:  # XREAD of several slots cannot block
            replies = await self._poll_streams(streams, limit, block)
        else:
            replies = await self.conn.call(
                self.conn.client.xread, streams, count=limit, block=max(1, int(block * 1000))
            )
        events: list[tuple[tuple[int, int], JobEvent]] = []
        for stream, entries in _stream_replies(replies):
            queue = stream.decode()[len("cv:{") : -len("}:events")]
            for entry_id, fields in entries:
                position.at[queue] = entry_id.decode()
                events.append((_entry_order(entry_id), _event(queue, entry_id, fields)))
        events.sort(key=lambda pair: pair[0])
        return msgspec.json.encode(position).decode(), [event for _, event in events]

    async def _poll_streams(self, streams: dict[str, str], limit: int, block: float) -> Any:
        deadline = asyncio.get_running_loop().time() + block
        while True:
            replies = await self.conn.pipelined(
                "xread", [({k: v}, limit) for k, v in streams.items()]
            )
            found = [reply for reply in replies if reply]
            if found or asyncio.get_running_loop().time() >= deadline:
                return [stream for reply in found for stream in _stream_replies(reply)]
            await asyncio.sleep(_EVENT_POLL_SECONDS)


def _stream_replies(replies: Any) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """XREAD's answer (RESP2) as (stream, entries) pairs."""
    return [(name, entries) for name, entries in replies or []]


def _entry_order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq)


def _event(queue: str, entry_id: bytes, fields: dict[bytes, bytes]) -> JobEvent:
    data = fields.get(b"data")
    return JobEvent(
        kind=JobEventKind(fields[b"kind"].decode()),
        job_id=fields[b"job"].decode(),
        queue=queue,
        at=_entry_order(entry_id)[0],
        data=data or None,
    )
