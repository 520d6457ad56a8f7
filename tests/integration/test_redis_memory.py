"""Redis under memory pressure never loses an acknowledged job.

Each test starts its own redis-server with ``--maxmemory``: under an evicting
policy (``allkeys-lru``) the job store refuses to open, naming the fix, unless
the application opts out; under ``noeviction`` a full server refuses writes,
which reach callers as ``StoreFullError`` with nothing half-written, while
workers keep their outcomes and carry on once memory is freed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from conveyor import (
    Cache,
    Conveyor,
    JobState,
    ServiceOptions,
    Status,
    StoreConfigError,
    StoreFullError,
    StoreUnavailableError,
    as_service,
)
from tests.redis_servers import RedisServer, running_server

pytestmark = [pytest.mark.redis]

MAXMEMORY = "4mb"
PAYLOAD = "x" * 2_000


@pytest.fixture
def evicting(tmp_path: Path) -> Iterator[RedisServer]:
    """A server that deletes keys when full (the production redis.conf of issue 15)."""
    config = {"maxmemory": MAXMEMORY, "maxmemory-policy": "allkeys-lru"}
    with running_server(config, directory=tmp_path / "lru") as server:
        yield server


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[RedisServer]:
    """A server that refuses writes when full."""
    config = {"maxmemory": MAXMEMORY, "maxmemory-policy": "noeviction"}
    with running_server(config, directory=tmp_path / "noeviction") as server:
        yield server


def _errors_of_kind(app: Conveyor, kind: str) -> float:
    value = app.metrics.registry.get_sample_value("conveyor_store_errors_total", {"kind": kind})
    return value or 0.0


async def _until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


_OVERFILL = """
redis.call('DEL', KEYS[1])  -- a first write that memory does not gate: the rest runs too
for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], i, string.rep('f', 10000)) end
"""


def _fill(server: RedisServer, leave: int | None = None) -> None:
    """Fill the server 300 KB past its maxmemory (or to ``leave`` bytes below it).

    A script whose first write is not gated on memory (DEL) may write past the limit
    (Redis refuses only a script's first write when full), so the server ends up
    clearly full, not hovering at the edge where a client's buffers tip it either way.
    """
    client = server.client()
    info = client.info("memory")
    room = int(info["maxmemory"]) - int(info["used_memory"])
    size = room + 300_000 if leave is None else room - leave
    client.eval(_OVERFILL, 1, "filler", max(1, size // 10_240))


def _free(server: RedisServer) -> None:
    server.client().delete("filler")


# -- an evicting server ---------------------------------------------------------------


async def test_a_server_that_evicts_is_refused_at_open_naming_the_fix(
    evicting: RedisServer,
) -> None:
    app = Conveyor(evicting.url, log_level="WARNING")
    with pytest.raises(StoreConfigError) as refused:
        await app.open()
    assert refused.value.setting == "maxmemory-policy"
    assert refused.value.observed == "allkeys-lru"
    message = str(refused.value)
    for fix in (
        "maxmemory-policy noeviction",
        "cache_url",
        "redis_allow_eviction_risking_job_loss",
    ):
        assert fix in message
    await app.close()
    assert evicting.client().dbsize() == 0, "a refused store wrote something"


async def test_where_config_is_disabled_the_policy_is_read_from_info(tmp_path: Path) -> None:
    config = {
        "maxmemory": MAXMEMORY,
        "maxmemory-policy": "volatile-lru",
        "rename-command": 'CONFIG ""',  # as managed services do
    }
    with running_server(config, directory=tmp_path / "managed") as server:
        app = Conveyor(server.url, log_level="WARNING")
        with pytest.raises(StoreConfigError, match="volatile-lru"):
            await app.open()
        await app.close()


async def test_the_opt_out_opens_an_evicting_server_and_readiness_reports_the_policy(
    evicting: RedisServer,
) -> None:
    app = Conveyor(evicting.url, log_level="WARNING", redis_allow_eviction_risking_job_loss=True)

    @app.task
    async def noop() -> None:
        return None

    try:
        job = await noop.enqueue()
        assert (await app.jobs.get(job.id)).status is JobState.WAITING
        report = await app.health.readiness()
        memory = report.checks["store_memory"]
        assert memory.status is Status.DEGRADED
        assert memory.observed == "allkeys-lru"
        assert "may evict jobs" in memory.detail
        assert report.status is Status.DEGRADED  # not critical: the app still serves
    finally:
        await app.close()


async def test_the_cache_accepts_a_server_that_evicts(
    bounded: RedisServer, evicting: RedisServer
) -> None:
    app = Conveyor(bounded.url, cache_url=evicting.url, log_level="WARNING")
    try:
        await app.cache.set("greeting", "hello")
        assert await app.cache.get("greeting") == "hello"
        async with Cache(evicting.url) as cache:
            assert await cache.get("greeting") == "hello"
        assert (await app.health.readiness()).checks["store_memory"].observed == "noeviction"
    finally:
        await app.close()


# -- a full server under noeviction ---------------------------------------------------


async def test_enqueue_past_maxmemory_raises_store_full_and_writes_nothing_half(
    bounded: RedisServer,
) -> None:
    """Batches over one queue (one script) and over two (one MULTI/EXEC) alike: a batch
    is written whole or refused whole, and every acknowledged job runs exactly once
    once memory is freed."""
    app = Conveyor(bounded.url, log_level="WARNING", keep_completed=100_000)
    runs: Counter[str] = Counter()

    @app.task(queue="left")
    async def left(key: str, blob: str) -> None:
        runs[key] += 1

    @app.task(queue="right")
    async def right(key: str, blob: str) -> None:
        runs[key] += 1

    acknowledged: set[str] = set()
    refused: set[str] = set()
    try:
        _fill(bounded, leave=1_000_000)  # room for a few hundred jobs
        batch_no = 0
        while len(refused) < 100:
            keys = [f"{batch_no}.{i}" for i in range(10)]
            calls = (
                [left.call(k, PAYLOAD) for k in keys]  # one queue: one script
                if batch_no % 2
                else [(left if i % 2 else right).call(k, PAYLOAD) for i, k in enumerate(keys)]
            )
            try:
                await app.enqueue_many(calls)
                acknowledged.update(keys)
            except StoreFullError:
                refused.update(keys)
            batch_no += 1
        assert len(acknowledged) >= 100, "the server refused before taking any job"
        assert _errors_of_kind(app, "full") >= 10
        counts = await app.jobs.counts()
        stored = sum(counts.get(q, {}).get(JobState.WAITING, 0) for q in ("left", "right"))
        assert stored == len(acknowledged), "a refused batch left jobs behind"
        assert (await app.health.readiness()).checks["store_memory"].status is Status.DEGRADED

        _free(bounded)
        stats = await app.work(burst=True, concurrency=20)
        assert stats.completed == len(acknowledged)
        assert set(runs) == acknowledged
        assert set(runs.values()) == {1}
        assert (await app.health.readiness()).checks["store_memory"].status is Status.OK
    finally:
        await app.close()


async def test_a_worker_keeps_its_outcomes_while_the_server_is_full_and_recovers(
    bounded: RedisServer,
) -> None:
    app = Conveyor(bounded.url, log_level="WARNING")
    started, gate = asyncio.Event(), asyncio.Event()
    runs: list[int] = []

    @app.task
    async def gated(n: int) -> int:
        started.set()
        await gate.wait()
        runs.append(n)
        return n

    job = await gated.enqueue(1)
    worker = app.worker(concurrency=1)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        _fill(bounded)
        gate.set()
        await _until(lambda: _errors_of_kind(app, "full") >= 2)  # refused, and tried again
        assert runs == [1]
        assert worker.stats.completed == 0
        assert (await app.jobs.get(job.id)).status is JobState.ACTIVE
        with pytest.raises(StoreUnavailableError):
            await gated.enqueue(2)

        _free(bounded)
        assert await job.wait(timeout=10) == 1
        assert worker.stats.completed == 1
        assert runs == [1]
    finally:
        _free(bounded)
        worker.stop()
        await running
        await app.close()


def test_health_shows_the_eviction_policy_as_an_observed_value(evicting: RedisServer) -> None:
    app = Conveyor(evicting.url, log_level="WARNING", redis_allow_eviction_risking_job_loss=True)
    web = as_service(FastAPI(), app, ServiceOptions(health_cache_seconds=0))
    with TestClient(web) as client:
        ready = client.get("/readyz")
        body = client.get("/health").json()
    assert ready.status_code == 200  # degraded, still ready
    entry = body["checks"]["store_memory:evictionPolicy"][0]
    assert entry["observedValue"] == "allkeys-lru"
    assert entry["status"] == "warn"
    assert entry["affectsReadiness"] is False
    assert "may evict jobs" in entry["output"]
