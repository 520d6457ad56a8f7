"""The metrics history on Redis: a hash of minutes per (kind, hour) and a hash of hour sums
per (kind, day), all in the ``{history}`` slot (``lua/history.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.stores.history import HOUR, HistoryRow, join_labels, split_labels, split_window
from conveyor.stores.redis.connection import RedisConnection

HOURS_KEY = "cv:{history}:hours"
"""Zset of the hashes that hold minutes, ``<kind>:<hour>`` by hour (``lua/history.lua``)."""
_PREFIX = "cv:{history}:"
DAY = 24
"""Hours in a day: the hour sums of a kind are kept in a hash per day."""


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
        self, kinds: Sequence[str], since_minute: int, until_minute: int, step: int = 1
    ) -> list[HistoryRow]:
        if step == HOUR:  # hours, from the hash of each day
            first, last = -(-since_minute // HOUR), until_minute // HOUR
            groups = await self._hashes(kinds, range(first // DAY, last // DAY + 1), ":d:")
        else:  # minutes, from the hash of each hour
            first, last = since_minute, until_minute
            groups = await self._hashes(kinds, range(first // HOUR, last // HOUR + 1), ":")
        found: list[HistoryRow] = []
        for kind, _, fields in groups:
            rows = []
            for field, value in fields.items():
                at, _, labels = field.decode().partition("\x1f")
                if first <= int(at) <= last:
                    minute = int(at) * (HOUR if step == HOUR else 1)
                    rows.append(HistoryRow(kind, split_labels(labels), minute, int(value)))
            found += sorted(rows, key=lambda r: (r.minute, r.labels))
        return found

    async def totals(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> dict[tuple[str, tuple[str, ...]], int]:
        # Summed straight from the hashes' fields (no row objects; a week is ~30,000
        # fields), checking the time of a field only in a hash the window cuts through.
        ends, hours = split_window(since_minute, until_minute)
        reads = [(a, b, 1, ":") for a, b in ends]
        if hours is not None:
            reads.append((hours[0], hours[1], HOUR, ":d:"))
        sums: dict[tuple[str, bytes], int] = {}
        for first, last, unit, infix in reads:
            span = HOUR if unit == 1 else DAY  # units (minutes, hours) per hash
            for kind, n, fields in await self._hashes(
                kinds, range(first // span, last // span + 1), infix
            ):
                whole = first <= n * span and n * span + span - 1 <= last
                for field, value in fields.items():
                    at, _, labels = field.partition(b"\x1f")
                    if whole or first <= int(at) <= last:
                        series = (kind, labels)
                        sums[series] = sums.get(series, 0) + int(value)
        return {(kind, split_labels(labels.decode())): n for (kind, labels), n in sums.items()}

    async def _hashes(
        self, kinds: Sequence[str], containers: range, infix: str
    ) -> list[tuple[str, int, dict[bytes, bytes]]]:
        """Per kind, the hashes ``<kind><infix><n>`` for n in ``containers`` (hours or
        days) that exist, with n, read in one pipelined round trip."""
        names = [(kind, n) for kind in sorted(set(kinds)) for n in containers]
        keys = [(f"{_PREFIX}{kind}{infix}{n}",) for kind, n in names]
        replies = await self._conn.pipelined("hgetall", keys)
        return [(k, n, fields) for (k, n), fields in zip(names, replies, strict=True) if fields]

    async def trim(self, before_minute: int) -> int:
        args = ["trim", before_minute]
        return int(await self._conn.run_script_once("history", [HOURS_KEY], args, what="trim"))
