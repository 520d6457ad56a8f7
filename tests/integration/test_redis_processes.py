"""Worker processes on one real server (Redis, PostgreSQL): SIGKILL loses no job, leases
hold long jobs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from tests.conftest import server_param, shared_store_url
from tests.integration.records import written_numbers
from tests.integration.redis_worker_app import record, slow_record

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.integration.redis_worker_app"]
CONCURRENCY = 20
FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
FAST_LEASE = {"LEASE_SECONDS": "1", "SWEEP_INTERVAL": "0.2", "CONCURRENCY": str(CONCURRENCY)}


@pytest.fixture(params=[server_param("redis"), server_param("postgres")])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store on a real server that every worker process reaches."""
    return shared_store_url(request, request.param, tmp_path)


def _env(url: str, runs: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_URL": url, "RUNS_DIR": str(runs), **extra}


def _runs(runs: Path) -> Counter[int]:
    """How many times each job number ran to the end, over every worker process."""
    counts: Counter[int] = Counter()
    for path in runs.glob("runs-*.txt"):
        counts.update(written_numbers(path))
    return counts


def _runs_of(runs: Path, proc: subprocess.Popen[bytes]) -> int:
    return len(written_numbers(runs / f"runs-{proc.pid}.txt"))


def _interrupted(runs: Path, proc: subprocess.Popen[bytes]) -> set[int]:
    """Jobs a (killed) worker process began and never finished."""
    started = written_numbers(runs / f"starts-{proc.pid}.txt")
    return set(started) - set(written_numbers(runs / f"runs-{proc.pid}.txt"))


def _duplicates(runs_per_job: Counter[int]) -> int:
    return sum(n - 1 for n in runs_per_job.values())


async def test_killing_a_worker_repeatedly_loses_no_job(server_url: str, tmp_path: Path) -> None:
    jobs, kills = 10_000, 3
    runs = tmp_path / "runs"
    runs.mkdir()
    env = _env(server_url, runs, **FAST_LEASE, MAX_STALLED=str(kills + 1), SHUTDOWN_TIMEOUT="5")
    # A job carries the max_stalled of the app that enqueued it: this producer's. A job
    # may be interrupted by more than one kill, or lose its 1 s lease on a loaded machine
    # besides a kill: a stall, not a loss, and it must not fail the job here.
    async with Conveyor(
        server_url, log_level="WARNING", keep_completed=1_000_000, max_stalled=kills + 1
    ) as producer:
        producer_record = producer.task(name="record")(record.fn)
        for start in range(0, jobs, 1_000):
            await producer.enqueue_many(
                [producer_record.call(n) for n in range(start, start + 1_000)]
            )
        # Every victim starts with the steady worker: a worker started after a kill may take
        # a second or two to import on a loaded machine, while the others drain the queue.
        steady = subprocess.Popen(WORKER, cwd=ROOT, env=env)
        victims = [subprocess.Popen(WORKER, cwd=ROOT, env=env) for _ in range(kills)]
        workers = [steady, *victims]
        interrupted: list[set[int]] = []
        try:
            for victim in victims:
                # Kill only a worker that is busy (it has run 200 jobs), mid-run: preferably
                # with a job begun and not finished (between two round trips it holds none,
                # and on PostgreSQL a round trip is a good part of a worker's time).
                await _wait_for(lambda v=victim: _runs_of(runs, v) >= 200, 30)  # type: ignore[misc]
                await _soon(lambda v=victim: bool(_interrupted(runs, v)), 0.5)  # type: ignore[misc]
                victim.kill()
                victim.wait(timeout=10)
                assert sum(_runs(runs).values()) < jobs, "the run ended before the kill"
                interrupted.append(_interrupted(runs, victim))
                # A worker in its place, which runs again what the killed one held.
                workers.append(subprocess.Popen(WORKER, cwd=ROOT, env=env))
            await _wait_for_completed(producer, jobs, timeout=60)
            counts = (await producer.jobs.counts())["default"]
        finally:
            for proc in workers:
                if proc.returncode is None:
                    proc.terminate()
            for proc in workers:
                proc.wait(timeout=30)
    runs_per_job = _runs(runs)
    assert set(runs_per_job) == set(range(jobs))
    assert counts[JobState.COMPLETED] == jobs
    assert counts[JobState.ACTIVE] == 0
    assert counts[JobState.WAITING] == 0
    assert counts[JobState.FAILED] == 0
    # The kills hit running jobs, and each of those ran to the end elsewhere.
    assert sum(map(len, interrupted)) > 0, [len(jobs) for jobs in interrupted]
    assert set().union(*interrupted) <= set(runs_per_job)
    # Only jobs that had run but were not yet acknowledged by a killed worker run twice,
    # and a worker never holds more than CONCURRENCY jobs.
    assert _duplicates(runs_per_job) <= kills * CONCURRENCY
    assert steady.returncode == 0


async def test_without_kills_no_job_runs_twice_even_ten_leases_long(
    server_url: str, tmp_path: Path
) -> None:
    # Slow jobs run ten leases long. A 2 s lease, not FAST_LEASE's 1 s: without kills any
    # stall is a failure here, and on a loaded machine a 1 s lease once ran out for a
    # batch of quick jobs whose claim took about that long to come back (PostgreSQL).
    quick, slow, slow_seconds = 2_000, 4, 20.0
    runs = tmp_path / "runs"
    runs.mkdir()
    env = _env(server_url, runs, **{**FAST_LEASE, "LEASE_SECONDS": "2"})
    async with Conveyor(server_url, log_level="WARNING", keep_completed=1_000_000) as producer:
        producer_record = producer.task(name="record")(record.fn)
        producer_slow = producer.task(name="slow_record")(slow_record.fn)
        slow_jobs = await producer.enqueue_many(
            [producer_slow.call(n, slow_seconds) for n in range(quick, quick + slow)]
        )
        await producer.enqueue_many([producer_record.call(n) for n in range(quick)])
        procs = [subprocess.Popen([*WORKER, "--burst"], cwd=ROOT, env=env) for _ in range(2)]
        try:
            for proc in procs:
                assert await asyncio.to_thread(proc.wait, 60) == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        counts = (await producer.jobs.counts())["default"]
        for job in slow_jobs:
            await job.refresh()
            assert (job.status, job.stalls, job.attempts) == (JobState.COMPLETED, 0, 1)
    assert _runs(runs) == Counter({n: 1 for n in range(quick + slow)})
    assert counts[JobState.COMPLETED] == quick + slow
    assert counts[JobState.ACTIVE] == 0
    assert counts[JobState.WAITING] == 0


async def _wait_for_completed(app: Conveyor, jobs: int, timeout: float) -> None:
    """Wait until every job finished; fail at once, with the errors, if one did not complete."""
    deadline = time.monotonic() + timeout
    while True:
        counts = (await app.jobs.counts()).get("default", {})
        finished = sum(counts.get(state, 0) for state in FINISHED)
        if finished >= jobs or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    failed = await app.jobs.list("failed", limit=20)
    errors = [(job.args, job.stalls, job.error and job.error.message) for job in failed]
    assert counts.get(JobState.COMPLETED, 0) == jobs, f"{dict(counts)}; failed: {errors}"


async def _soon(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate`` holds within ``timeout`` seconds (polled every 2 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


async def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)
