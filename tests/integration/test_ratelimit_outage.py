"""Redis lost mid-run: no check waits past the budget, and each limiter follows its policy.

Each test starts its own redis-server (never the shared one), since it kills it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from conveyor import (
    Conveyor,
    RateLimiter,
    RateLimitUnavailableError,
    RatePolicy,
    Status,
)
from tests.redis_servers import RedisServer, running_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]

BUDGET = 0.05
SLACK = 0.05
"""Scheduling slack on a loaded 2-core machine: a check must answer by BUDGET + SLACK."""
CLIENTS = 8


async def run_clients(limiter: RateLimiter, seconds: float) -> tuple[Counter[str], list[float]]:
    """CLIENTS tasks check one key for ``seconds``: the outcomes, and how long each took."""
    outcomes: Counter[str] = Counter()
    took: list[float] = []
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                decision = await limiter.check("user:1")
            except RateLimitUnavailableError:
                outcome = "unavailable"
            else:
                where = "local" if decision.degraded else "shared"
                outcome = f"{where}-{'allowed' if decision.allowed else 'denied'}"
            took.append(time.monotonic() - started)
            outcomes[outcome] += 1
            await asyncio.sleep(0.002)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return outcomes, took


def lose(server: RedisServer, how: str) -> None:
    if how == "killed":
        server.kill()  # connections reset, the port refuses new ones
    else:
        server.freeze()  # SIGSTOP: sockets stay open and nothing answers


def bring_back(server: RedisServer, how: str) -> None:
    if how == "killed":
        server.start(server.ports)  # empty, and without the script: NOSCRIPT
    else:
        server.thaw()


@pytest.mark.parametrize("how", ["killed", "frozen"])
async def test_a_lost_store_fails_open_locally_or_closed_and_never_past_the_budget(
    tmp_path: Path, how: str
) -> None:
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, rate_limit_budget=BUDGET, log_level="WARNING")
        api = app.rate_limits.add(RatePolicy("api", "5/minute"))
        fail_open = app.rate_limits.limiter(api)
        fail_closed = app.rate_limits.limiter(api, failure="closed")
        try:
            before, _ = await run_clients(fail_open, 0.3)
            assert before == {"shared-allowed": 5, "shared-denied": sum(before.values()) - 5}

            lose(server, how)
            opened, took_open = await run_clients(fail_open, 1.0)
            closed, took_closed = await run_clients(fail_closed, 1.0)
            took = took_open + took_closed
            assert max(took) < BUDGET + SLACK
            # The circuit opens after a few failures: most checks do not wait at all.
            assert sum(t > BUDGET / 2 for t in took) < len(took) / 10
            # Fail open: this process's own count of the same policy (5 a minute) decides.
            assert opened["local-allowed"] == 5
            assert set(opened) == {"local-allowed", "local-denied"}
            assert set(closed) == {"unavailable"}
            health = await app.health.readiness()
            assert health.checks["rate_limits"].status is Status.DEGRADED  # not critical

            bring_back(server, how)
            await wait_for_shared(fail_open)
            assert (await app.health.readiness()).checks["rate_limits"].status is Status.OK
        finally:
            server.thaw()
            await app.close()


async def wait_for_shared(limiter: RateLimiter) -> None:
    """Until a check is decided by the store again (the circuit lets a probe through)."""
    async with asyncio.timeout(10):
        while (await limiter.check("after")).degraded:
            await asyncio.sleep(0.05)


async def test_a_restarted_server_gets_the_script_again_and_counts_once(tmp_path: Path) -> None:
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, log_level="WARNING")
        api = app.rate_limits.add(RatePolicy("api", "3/minute"))
        try:
            assert (await app.rate_limits.check("api", key="k")).allowed
            server.restart(crash=False)  # no persistence: no counts, and no script (NOSCRIPT)
            await wait_for_shared(app.rate_limits.limiter(api))
            decisions = [await app.rate_limits.check("api", key="k") for _ in range(4)]
            assert [d.allowed for d in decisions] == [True, True, True, False]
            assert not any(d.degraded for d in decisions)
        finally:
            await app.close()


BUSY_SCRIPT = """
local t = redis.call("TIME")
local start = t[1] * 1000000 + t[2]
repeat t = redis.call("TIME") until t[1] * 1000000 + t[2] - start > tonumber(ARGV[1])
"""
"""Keeps the server busy for ARGV[1] µs: commands sent meanwhile run once it is done."""


async def test_a_check_past_its_budget_is_counted_at_most_once_by_the_store(tmp_path: Path) -> None:
    """The server runs a script after its caller gave up on the reply (here: once another
    script keeps it busy past the budget); sending it again would count it twice."""
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, rate_limit_budget=BUDGET, log_level="WARNING")
        app.rate_limits.add(RatePolicy("api", "10/hour"))
        try:
            # Connected and the script loaded first, so a second send would need no handshake.
            first = await asyncio.gather(*(app.rate_limits.check("api", key=k) for k in "ab"))
            assert all(d.allowed for d in first)
            busy = asyncio.create_task(
                asyncio.to_thread(server.client().eval, BUSY_SCRIPT, 0, 400_000)
            )
            await asyncio.sleep(0.1)  # the busy script is running
            late = await app.rate_limits.check("api", key="a")
            assert late.degraded  # decided in this process, within the budget
            await busy
            await asyncio.sleep(0.5)  # the circuit lets a probe through again
            assert (await app.rate_limits.usage("api", "a")).remaining == 8  # counted once
        finally:
            await app.close()
