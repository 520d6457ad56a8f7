"""The audit log on Redis: a zset by sequence number in the ``{audit}`` slot."""

from __future__ import annotations

import msgspec

from conveyor.clock import Clock
from conveyor.stores.audit import AuditEntry, AuditPage
from conveyor.stores.redis.connection import RedisConnection

LOG_KEY = "cv:{audit}:log"
"""Zset: ``<seq>|<at>|<entry JSON>`` by seq (``lua/audit.lua``)."""
_ENTRY = msgspec.json.Decoder(AuditEntry)


class RedisAuditStore:
    """An :class:`~conveyor.stores.audit.AuditStore` on the Redis backend's connection."""

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def append(self, entry: AuditEntry, keep: int, keep_ms: int) -> str:
        args = [entry.at, msgspec.json.encode(entry), keep, self._clock.now_ms() - keep_ms]
        seq = await self._conn.run_script_once("audit", [LOG_KEY], args, what="audit append")
        return str(seq)

    async def page(self, cursor: str | None, limit: int) -> AuditPage:
        top = "+inf" if cursor is None else f"({int(cursor)}"
        members = await self._conn.call(
            self._conn.client.zrevrangebyscore, LOG_KEY, top, "-inf", start=0, num=limit + 1
        )
        entries = []
        for member in members[:limit]:
            seq, _, rest = member.partition(b"|")
            _, _, body = rest.partition(b"|")
            entries.append(msgspec.structs.replace(_ENTRY.decode(body), id=seq.decode()))
        return AuditPage(entries, entries[-1].id if len(members) > limit else None)
