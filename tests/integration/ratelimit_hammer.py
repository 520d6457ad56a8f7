"""One process of the rate-limit accuracy test: CLIENTS tasks check one key as fast as
they can from START_AT for DURATION seconds, then print what they saw as JSON.

    python -m tests.integration.ratelimit_hammer URL START_AT DURATION CLIENTS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from conveyor import Conveyor, RateLimitUnavailableError, RatePolicy
from conveyor.clock import SystemClock

POLICY = RatePolicy("hammer", "100/10s")
KEY = "the-key"


class RecordingClock(SystemClock):
    """The system clock, noting the first and last reading once recording starts: the
    span the decisions were made in."""

    def __init__(self) -> None:
        self.recording = False
        self.first: int | None = None
        self.last: int | None = None

    def now_ms(self) -> int:
        now = super().now_ms()
        if self.recording:
            if self.first is None:
                self.first = now
            self.last = now
        return now


async def hammer(url: str, start_at: float, duration: float, clients: int) -> dict[str, object]:
    clock = RecordingClock()
    app = Conveyor(
        url,
        clock=clock,
        rate_limit_budget=5.0,  # accuracy, not latency: a slow check must not fall back
        rate_limit_failure="closed",  # and a failed one shows up as an error
        log_level="WARNING",
    )
    async with app:
        limiter = app.rate_limits.limiter(app.rate_limits.add(POLICY))
        await asyncio.gather(*(limiter.usage(f"warm-up:{n}") for n in range(clients)))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        clock.recording = True
        deadline = start_at + duration
        counts = {"checks": 0, "admitted": 0, "errors": 0, "degraded": 0}

        async def client() -> None:
            while time.time() < deadline:
                try:
                    decision = await limiter.check(KEY)
                except RateLimitUnavailableError:
                    counts["errors"] += 1
                    continue
                counts["checks"] += 1
                counts["admitted"] += decision.allowed
                counts["degraded"] += decision.degraded

        await asyncio.gather(*(client() for _ in range(clients)))
        clock.recording = False
    return {**counts, "first_ms": clock.first, "last_ms": clock.last}


if __name__ == "__main__":
    url, start_at, duration, clients = sys.argv[1:5]
    result = asyncio.run(hammer(url, float(start_at), float(duration), int(clients)))
    print(json.dumps(result))
