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


async def run_clients(limiter: RateLimiter, seconds: float) -> tuple[Counter[str], float]:
    """CLIENTS tasks check one key for ``seconds``: the outcomes, and the slowest check."""
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal slowest
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                decision = await limiter.check("user:1")
            except RateLimitUnavailableError:
                outcome = "unavailable"
            else:
                where = "local" if decision.degraded else "shared"
                outcome = f"{where}-{'allowed' if decision.allowed else 'denied'}"
            slowest = max(slowest, time.monotonic() - started)
            outcomes[outcome] += 1
            await asyncio.sleep(0.002)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return outcomes, slowest


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
            opened, slowest_open = await run_clients(fail_open, 1.0)
            closed, slowest_closed = await run_clients(fail_closed, 1.0)
            assert max(slowest_open, slowest_closed) < BUDGET + SLACK
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
