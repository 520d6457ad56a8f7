"""Redis going away: enqueue fails fast with a typed error, a worker rides out a restart.

Each test starts its own redis-server (never the shared one), since it kills it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState, StoreUnavailableError
from tests.redis_servers import RedisServer, free_port, running_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]

STORE_TIMEOUT = 1.0
FAIL_WITHIN = 3.0  # store_timeout plus slack for a loaded machine; a hang would take forever


def _break(server: RedisServer, how: str) -> None:
    if how == "killed":
        server.kill()  # connections reset, the port refuses new ones
    else:
        server.freeze()  # SIGSTOP: the socket stays open and nothing answers


@pytest.mark.parametrize("how", ["killed", "frozen"])
async def test_enqueue_raises_store_unavailable_within_the_store_timeout(
    tmp_path: Path, how: str
) -> None:
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, store_timeout=STORE_TIMEOUT, log_level="WARNING")

        @app.task
        async def noop() -> None:
            return None

        try:
            await noop.enqueue()  # connected and working
            _break(server, how)
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                await noop.enqueue()
            assert time.monotonic() - started < FAIL_WITHIN
        finally:
            server.thaw()
            started = time.monotonic()
            await app.close()
            assert time.monotonic() - started < FAIL_WITHIN


async def test_enqueue_raises_store_unavailable_when_no_server_ever_answered() -> None:
    app = Conveyor(
        f"redis://127.0.0.1:{free_port()}/0", store_timeout=STORE_TIMEOUT, log_level="WARNING"
    )

    @app.task
    async def noop() -> None:
        return None

    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailableError):
            await noop.enqueue()
        assert time.monotonic() - started < FAIL_WITHIN
    finally:
        await app.close()


async def test_a_worker_keeps_going_across_a_server_crash_and_restart(tmp_path: Path) -> None:
    # appendfsync always: every acknowledged write is on disk before the reply, so
    # jobs enqueued (and finished) before the crash are still there after it.
    durable = {"appendonly": "yes", "appendfsync": "always"}
    with running_server(durable, directory=tmp_path / "redis") as server:
        app = Conveyor(
            server.url,
            store_timeout=STORE_TIMEOUT,
            lease_seconds=1,
            sweep_interval=0.2,
            max_stalled=5,  # leases lapse during the outage; the jobs must come back, not fail
            shutdown_timeout=5,
            log_level="ERROR",
        )

        @app.task
        async def step(n: int) -> int:
            await asyncio.sleep(0.1)
            return n

        try:
            before = await app.enqueue_many([step.call(n) for n in range(40)])
            worker = app.worker(concurrency=4)
            running = asyncio.create_task(worker.run())
            await _wait_until_completed(app, 8)  # running, and some jobs still in flight

            server.kill()
            await asyncio.sleep(2 * STORE_TIMEOUT + 0.5)  # longer than a lease and a timeout
            assert not running.done(), "the worker died with the store"
            server.start(server.ports)

            after = await app.enqueue_many([step.call(n) for n in range(100, 110)])
            results = [await job.wait(timeout=60) for job in before + after]
            assert results == [*range(40), *range(100, 110)]
            counts = (await app.jobs.counts())["default"]
            assert counts[JobState.COMPLETED] == 50
            assert counts[JobState.ACTIVE] == 0
            assert counts[JobState.WAITING] == 0
            worker.stop()
            await asyncio.wait_for(running, 30)
        finally:
            await app.close()


async def _wait_until_completed(app: Conveyor, jobs: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await app.jobs.counts()).get("default", {}).get(JobState.COMPLETED, 0) < jobs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {jobs} jobs completed")
        await asyncio.sleep(0.02)
