"""Three worker processes fire one fast interval schedule: every tick runs exactly once.

No scheduler process: the three workers race on each tick and the store's
compare-and-set lets one win. Ticks are counted by their deterministic job
ids (``<name>@<tick ms>``), as each run writes them down, so the test does not
depend on timing: it waits for 1,000 ticks, removes the schedule, lets the
queue drain, and checks that the ticks form one unbroken run with no repeats.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from tests.conftest import server_param, shared_store_url
from tests.integration.records import written_numbers
from tests.integration.schedule_worker_app import tick

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.integration.schedule_worker_app"]
EVERY_MS = 10
TICKS = 1_000
PENDING = (JobState.SCHEDULED, JobState.WAITING, JobState.ACTIVE)


def _ticks(runs: Path) -> Counter[int]:
    counts: Counter[int] = Counter()
    for path in runs.glob("runs-*.txt"):
        counts.update(written_numbers(path))
    return counts


async def _fire_with_three_workers(url: str, runs: Path) -> tuple[Counter[int], int]:
    env = {**os.environ, "CONVEYOR_URL": url, "RUNS_DIR": str(runs)}
    procs = [subprocess.Popen(WORKER, cwd=ROOT, env=env) for _ in range(3)]
    try:
        async with Conveyor(url, log_level="WARNING") as producer:
            producer_tick = producer.task(name="tick")(tick.fn)
            added = await producer.schedules.add(producer_tick, every=EVERY_MS / 1000, name="fast")
            first = round(added.next_fire.timestamp() * 1000)
            async with asyncio.timeout(180):
                while len(_ticks(runs)) < TICKS:
                    await asyncio.sleep(0.1)
                await producer.schedules.remove("fast")
                while await _pending(producer):
                    await asyncio.sleep(0.1)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        exits = [proc.wait(timeout=60) for proc in procs]
    assert exits == [0, 0, 0]
    return _ticks(runs), first


async def _pending(app: Conveyor) -> int:
    counts = (await app.jobs.counts())["default"]
    return sum(counts[state] for state in PENDING)


def _check_every_tick_once(ticks: Counter[int], first: int) -> None:
    repeated = {t: n for t, n in ticks.items() if n > 1}
    assert repeated == {}
    fired = sorted(ticks)
    assert len(fired) >= TICKS
    assert fired[0] == first
    missing = set(range(first, fired[-1] + 1, EVERY_MS)) - set(fired)
    assert missing == set()
    assert all(t % EVERY_MS == 0 for t in fired)


async def test_three_sqlite_workers_fire_each_tick_exactly_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    ticks, first = await _fire_with_three_workers(f"sqlite:///{tmp_path / 'shared.db'}", runs)
    _check_every_tick_once(ticks, first)


@pytest.mark.parametrize("kind", [server_param("redis"), server_param("postgres")])
async def test_three_workers_on_a_server_fire_each_tick_exactly_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    ticks, first = await _fire_with_three_workers(shared_store_url(request, kind, tmp_path), runs)
    _check_every_tick_once(ticks, first)
