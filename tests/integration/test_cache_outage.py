"""Redis killed mid-run, then restarted: the cache keeps answering and recovers.

Each test starts its own redis-server (never the shared one), since it kills it.
Appendonly with fsync on every write keeps what was written before the crash,
so the test can see invalidations that failed during the outage replayed on
the restarted server.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor import Cache
from tests.redis_servers import running_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]

BUDGET = 0.05
# Every call must come back within the budget; a loaded 2-core CI box can add
# scheduling delay on top, so the assertion allows 10x. A call that waited for a
# socket timeout (5 s) or hung would fail it by far.
LATENCY_BOUND = BUDGET * 10
STALE_BOUND = 1.0


async def _timed(call: Any, latencies: list[float]) -> Any:
    started = time.monotonic()
    try:
        return await call
    finally:
        latencies.append(time.monotonic() - started)


async def test_redis_killed_mid_run_then_restarted(tmp_path: Path) -> None:
    durable = {"appendonly": "yes", "appendfsync": "always"}
    with running_server(durable, directory=tmp_path / "redis") as server:
        writer = Cache(server.url, budget=BUDGET)
        reader = Cache(server.url, budget=BUDGET)
        try:
            await _run(server, writer, reader)
        finally:
            await writer.close()
            await reader.close()


async def _run(server: Any, writer: Cache, reader: Cache) -> None:
    await writer.set("k", "before", ttl=600)
    await writer.set("gone", "deleted during the outage", ttl=600)
    assert await reader.get("k") == "before"
    assert (await reader.check_health()).status.value == "ok"

    server.kill()
    latencies: list[float] = []
    errors: list[BaseException] = []
    computed = 0

    async def factory() -> int:
        nonlocal computed
        computed += 1
        return computed

    outage_ends = time.monotonic() + 1.5
    i = 0
    while time.monotonic() < outage_ends:
        i += 1
        calls = [
            writer.set("w", f"during-{i}", ttl=600),
            reader.get("k", allow_stale=True),
            reader.get_or_set("computed", factory, ttl=600),
            writer.get_many(["k", "x"]),
            writer.incr("counter") if i == 1 else writer.exists("k"),
            writer.invalidate_tags("t"),
        ]
        if i == 1:
            calls.append(writer.delete("gone"))
        results = await asyncio.gather(
            *(_timed(c, latencies) for c in calls), return_exceptions=True
        )
        errors += [r for r in results if isinstance(r, BaseException)]
        await asyncio.sleep(0.01)

    # incr cannot be served from a local tier: it is the one call that says so.
    assert [type(e).__name__ for e in errors] == ["CacheUnavailableError"]
    assert max(latencies) < LATENCY_BOUND, f"slowest call {max(latencies):.3f}s"
    assert await reader.get("k", allow_stale=True) == "before"  # its local copy
    assert await writer.get("w") == f"during-{i}"  # its own write, local only
    assert computed == 1  # the factory ran once; the value was then served locally
    assert (await reader.check_health()).status.value == "degraded"
    assert writer.degraded

    server.start(server.ports)
    restarted = time.monotonic()
    async with Cache(server.url) as other:
        # Written at once, before the reader's feed is back: the reader misses the
        # message and must not go on serving its local "before" for long.
        await other.set("k", "after", ttl=600)
        seen: list[tuple[float, Any]] = []
        while time.monotonic() - restarted < 2.0:
            seen.append((time.monotonic() - restarted, await reader.get("k")))
            await asyncio.sleep(0.02)
        stale = [(t, v) for t, v in seen if v != "after"]
        assert all(t <= STALE_BOUND for t, _ in stale), f"stale after {STALE_BOUND}s: {stale[-3:]}"
        # The delete that failed during the outage was replayed on the restarted server.
        await writer.exists("w")  # any call: lets the writer's circuit close
        await asyncio.sleep(0.2)
        assert await other.get("gone") is None
    assert (await reader.check_health()).status.value == "ok"
    assert writer.shared_stats.replayed_invalidations >= 1
