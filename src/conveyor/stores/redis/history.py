"""The metrics history on Redis: a hash per (kind, hour) in the ``{history}`` slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.stores.history import HistoryRow, join_labels, split_labels
from conveyor.stores.redis.connection import RedisConnection

HOURS_KEY = "cv:{history}:hours"
"""Zset of the hashes that hold minutes, ``<kind>:<hour>`` by hour (``lua/history.lua``)."""
_PREFIX = "cv:{history}:"


class RedisHistory:
    """A :class:`~conveyor.stores.history.MetricsHistory` on the Redis backend's connection.

    An add is sent at most once (``run_script_once``): resending one whose reply was
    lost could count it twice.
    """

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def add(self, rows: Sequence[HistoryRow]) -> None:
        args: list[Any] = ["add"]
        for row in rows:
            args += [row.kind, row.minute, join_labels(row.labels), row.value]
        await self._conn.run_script_once("history", [HOURS_KEY], args, what="history add")

    async def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> list[HistoryRow]:
        found: list[HistoryRow] = []
        for kind, _, fields in await self._hours(kinds, since_minute, until_minute):
            rows = []
            for field, value in fields.items():
                minute, _, labels = field.decode().partition("\x1f")
                if since_minute <= int(minute) <= until_minute:
                    rows.append(HistoryRow(kind, split_labels(labels), int(minute), int(value)))
            found += sorted(rows, key=lambda r: (r.minute, r.labels))
        return found

    async def totals(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> dict[tuple[str, tuple[str, ...]], int]:
        sums: dict[tuple[str, bytes], int] = {}
        for kind, hour, fields in await self._hours(kinds, since_minute, until_minute):
            whole = since_minute <= hour * 60 and hour * 60 + 59 <= until_minute
            for field, value in fields.items():
                minute, _, labels = field.partition(b"\x1f")
                if whole or since_minute <= int(minute) <= until_minute:
                    series = (kind, labels)
                    sums[series] = sums.get(series, 0) + int(value)
        return {(kind, split_labels(labels.decode())): n for (kind, labels), n in sums.items()}

    async def _hours(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> list[tuple[str, int, dict[bytes, bytes]]]:
        """Per kind and hour the window touches, that hour's hash (one pipelined round trip)."""
        hours = [
            (kind, hour)
            for kind in sorted(set(kinds))
            for hour in range(since_minute // 60, until_minute // 60 + 1)
        ]
        keys = [(f"{_PREFIX}{kind}:{hour}",) for kind, hour in hours]
        replies = await self._conn.pipelined("hgetall", keys)
        return [(k, h, fields) for (k, h), fields in zip(hours, replies, strict=True) if fields]

    async def trim(self, before_minute: int) -> int:
        args = ["trim", before_minute]
        return int(await self._conn.run_script_once("history", [HOURS_KEY], args, what="trim"))
