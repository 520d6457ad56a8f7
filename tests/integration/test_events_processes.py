"""Consumer processes SIGKILLed at random while they handle 10,000 events: none is lost.

Runs on one SQLite file, on a real Redis server and on PostgreSQL. Every event must end
handled by each group or, for the poison ones, dead-lettered after exactly
its attempts; nothing may stay waiting or running.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from tests.conftest import server_param, shared_store_url
from tests.integration.events_consumer_app import POISON_EVERY, OrderEvent
from tests.integration.records import written_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = [sys.executable, "-m", "tests.integration.events_consumer_app"]
EVENTS = 10_000
KILLS = 4
GROUPS = ("audit", "notify")


@pytest.fixture(params=["sqlite", server_param("redis"), server_param("postgres")])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return shared_store_url(request, request.param, tmp_path)


def _handled(runs: Path) -> dict[str, Counter[int]]:
    handled: dict[str, Counter[int]] = {group: Counter() for group in GROUPS}
    for path in runs.glob("runs-*.txt"):
        for line in written_lines(path):
            group, n = line.split()
            handled[group][int(n)] += 1
    return handled


async def test_killed_consumers_lose_no_event(shared_url: str, tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {
        **os.environ,
        "CONVEYOR_URL": shared_url,
        "RUNS_DIR": str(runs),
        "LEASE_SECONDS": "1",
        "SWEEP_INTERVAL": "0.2",
        "MAX_STALLED": str(KILLS + 1),
    }
    consumers = [subprocess.Popen(CONSUMER, cwd=ROOT, env=env) for _ in range(3)]
    async with Conveyor(shared_url, log_level="WARNING", keep_completed=1_000_000) as producer:
        try:
            await _wait_for_groups(producer)
            for start in range(0, EVENTS, 1_000):
                await producer.events.publish_many(
                    [OrderEvent(n) for n in range(start, start + 1_000)]
                )
            for kill in range(KILLS):
                # Kill a random consumer at a random point while deliveries remain.
                target = (kill + 1) * EVENTS // (KILLS + 2) + rng.randrange(EVENTS // 20)
                await _wait(lambda t=target: sum(_handled(runs)["audit"].values()) >= t, 60)
                victim = rng.randrange(len(consumers))
                consumers[victim].kill()
                consumers[victim].wait(timeout=10)
                consumers[victim] = subprocess.Popen(CONSUMER, cwd=ROOT, env=env)
            await _wait_until_settled(producer, timeout=120)
            counts = await producer.jobs.counts()
            letters = await producer.events.dead_letters.list("notify", limit=100)
        finally:
            for proc in consumers:
                proc.terminate()
            for proc in consumers:
                proc.wait(timeout=30)

    handled = _handled(runs)
    poison = {n for n in range(EVENTS) if n % POISON_EVERY == 0}
    assert set(handled["audit"]) == set(range(EVENTS)), f"seed {seed}"
    assert set(handled["notify"]) == set(range(EVENTS)) - poison, f"seed {seed}"
    assert sorted(letter.data["n"] for letter in letters) == sorted(poison)
    assert {letter.attempts for letter in letters} == {3}
    for group in GROUPS:
        by_state = counts[f"events.{group}"]
        assert by_state[JobState.WAITING] == by_state[JobState.ACTIVE] == 0
        assert by_state[JobState.SCHEDULED] == 0
    assert counts["events.audit"][JobState.COMPLETED] == EVENTS
    assert counts["events.audit"][JobState.FAILED] == 0
    assert counts["events.notify"][JobState.FAILED] == len(poison)
    # A kill re-runs at most what the killed process held (20 slots per group's handler).
    duplicates = sum(n - 1 for c in handled.values() for n in c.values())
    assert duplicates <= KILLS * 20 * len(GROUPS), f"seed {seed}"


async def _wait_for_groups(app: Conveyor) -> None:
    """Wait until the consumers recorded their subscriptions (so the producer routes to them)."""
    deadline = time.monotonic() + 30
    while set(await app.events.store.groups()) != set(GROUPS):
        assert time.monotonic() < deadline, "consumers never declared their groups"
        await asyncio.sleep(0.05)


async def _wait_until_settled(app: Conveyor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = await app.jobs.counts()
        finished = sum(
            counts.get(f"events.{g}", {}).get(s, 0)
            for g in GROUPS
            for s in (JobState.COMPLETED, JobState.FAILED)
        )
        if finished >= EVENTS * len(GROUPS):
            return
        assert time.monotonic() < deadline, f"not settled: {counts}"
        await asyncio.sleep(0.2)


async def _wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)
