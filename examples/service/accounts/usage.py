"""Per-key usage: counted in conveyor's cache per request, written to the database in
batches by a schedule, never once per request.

Each request adds one to the counter ``usage:<key id>:<window start>`` (an
atomic increment in the shared tier: Redis ``INCRBY`` or the SQLite cache
file, so every server process adds to the same counter). Every
``usage_flush_seconds`` (5 minutes) the flush reads the counters of the
windows that have closed, for every key, in one ``get_many``; writes them in
one transaction (an upsert that *sets* the count, so a flush that ran twice
writes the same rows); and only then deletes the counters. A counter that was
never flushed (the service down for an hour) expires with its TTL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from sqlalchemy import select

from conveyor import CacheError
from examples.service.backbone import backbone, database, metrics, settings
from examples.service.database import upsert

from .models import ApiKey, KeyUsage

log = structlog.get_logger("service.usage")

WINDOW = settings.usage_flush_seconds
KEPT_WINDOWS = 12
"""Closed windows the flush looks at (and how long a counter lives): an hour at 5 min."""
READ_BATCH = 1_000


def window_of(unix_seconds: float) -> int:
    return int(unix_seconds // WINDOW) * WINDOW


def counter_key(key_id: int, window: int) -> str:
    return f"usage:{key_id}:{window}"


async def count_request(key_id: int) -> None:
    """One request made with the key (a cache outage loses the count, never the request)."""
    key = counter_key(key_id, window_of(time.time()))
    try:
        if await backbone.cache.incr(key) == 1:
            await backbone.cache.expire(key, WINDOW * (KEPT_WINDOWS + 1))
    except CacheError as exc:
        log.warning("usage not counted", error=str(exc))


def counted_windows(now: float) -> list[int]:
    """The windows whose counters may still be in the cache, newest (the open one) first."""
    current = window_of(now)
    return [current - WINDOW * back for back in range(KEPT_WINDOWS + 1)]


async def cached_counts(key_ids: Sequence[int], now: float) -> dict[tuple[int, int], int]:
    """Requests per (key, window) counted in the cache (flushed or not: the flush deletes
    a counter only after its window is written)."""
    return await _read([(key_id, w) for key_id in key_ids for w in counted_windows(now)])


async def _read(pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    found: dict[tuple[int, int], int] = {}
    for start in range(0, len(pairs), READ_BATCH):
        chunk = pairs[start : start + READ_BATCH]
        values = await backbone.cache.get_many([counter_key(*pair) for pair in chunk])
        for pair, value in zip(chunk, values, strict=True):
            if isinstance(value, int) and value > 0:
                found[pair] = value
    return found


@backbone.task(every=WINDOW, retries=2)
async def flush_usage() -> int:
    """Write the closed windows' counters to ``api_key_usage``; returns the requests."""
    closed = window_of(time.time()) - WINDOW
    async with database.reading() as session:
        key_ids = list(await session.scalars(select(ApiKey.id)))
    pairs = [(key_id, closed - WINDOW * back) for key_id in key_ids for back in range(KEPT_WINDOWS)]
    counts = await _read(pairs)
    if not counts:
        return 0
    rows = [
        {"key_id": key_id, "window_start": window, "requests": count}
        for (key_id, window), count in counts.items()
    ]
    async with database.writing() as session:
        await upsert(session, KeyUsage, rows, ["key_id", "window_start"], ["requests"])
    await backbone.cache.delete(*(counter_key(*pair) for pair in counts))
    total = sum(counts.values())
    metrics.usage_flushed.inc(total)
    log.info("usage flushed", keys=len({key for key, _ in counts}), requests=total)
    return total
