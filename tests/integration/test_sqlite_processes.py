"""Several worker processes on one store (a SQLite file, PostgreSQL), and processes killed
with SIGKILL: a worker holding a job, a producer right after its enqueue returned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from tests.conftest import server_param, shared_store_url
from tests.integration.records import written_numbers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.integration.sqlite_worker_app"]


@pytest.fixture(params=["sqlite", server_param("postgres")])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store that every process of the test reaches."""
    return shared_store_url(request, request.param, tmp_path)


def _env(url: str, runs: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_URL": url, "RUNS_DIR": str(runs), **extra}


def _runs(runs: Path) -> Counter[int]:
    counts: Counter[int] = Counter()
    for path in runs.glob("runs-*.txt"):
        counts.update(written_numbers(path))
    return counts


async def test_three_worker_processes_complete_every_job_exactly_once(
    shared_url: str, tmp_path: Path
) -> None:
    url = shared_url
    runs = tmp_path / "runs"
    runs.mkdir()
    from tests.integration.sqlite_worker_app import record

    async with Conveyor(url, log_level="WARNING") as producer:
        producer_record = producer.task(name="record")(record.fn)
        await producer.enqueue_many([producer_record.call(n) for n in range(5_000)])
        procs = [
            subprocess.Popen([*WORKER, "--burst"], cwd=ROOT, env=_env(url, runs)) for _ in range(3)
        ]
        for proc in procs:
            assert proc.wait(timeout=120) == 0
        counts = await producer.jobs.counts()
    runs_per_job = _runs(runs)
    assert len(runs_per_job) == 5_000
    assert set(runs_per_job.values()) == {1}
    assert counts["default"][JobState.COMPLETED] == 5_000
    assert counts["default"][JobState.ACTIVE] == 0
    assert counts["default"][JobState.WAITING] == 0


async def test_a_job_held_by_a_killed_worker_completes_after_its_lease(
    shared_url: str, tmp_path: Path
) -> None:
    url = shared_url
    runs = tmp_path / "runs"
    runs.mkdir()
    env = _env(url, runs, LEASE_SECONDS="1", SWEEP_INTERVAL="0.2", SHUTDOWN_TIMEOUT="0.5")
    from tests.integration.sqlite_worker_app import slow_record

    async with Conveyor(url, log_level="WARNING") as producer:
        producer_slow = producer.task(name="slow_record")(slow_record.fn)
        job = await producer_slow.enqueue(7, 2.0)
        victim = subprocess.Popen(WORKER, cwd=ROOT, env=env)
        await _wait_for(lambda: any(runs.glob("started-7-*")), 30)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        await job.refresh()
        assert job.status is JobState.ACTIVE

        survivor = subprocess.Popen(WORKER, cwd=ROOT, env=env)
        try:
            assert await job.wait(timeout=60) == 7
        finally:
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0
        await job.refresh()
        assert job.stalls == 1
        counts = await producer.jobs.counts()
    assert counts["default"][JobState.ACTIVE] == 0
    assert counts["default"][JobState.WAITING] == 0
    assert _runs(runs) == Counter({7: 1})


async def test_an_acknowledged_enqueue_survives_kill_9_of_the_producer(
    shared_url: str, tmp_path: Path
) -> None:
    url = shared_url
    script = (
        "import asyncio, os, signal\n"
        "from tests.integration.sqlite_worker_app import app, record\n"
        "async def main():\n"
        "    job = await record.options(job_id='survivor').enqueue(1)\n"
        "    print(job.id, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_env(url, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.strip() == "survivor"
    async with Conveyor(url, log_level="WARNING") as reader:
        job = await reader.jobs.get("survivor")
        assert job.status is JobState.WAITING


async def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)
