"""Global concurrency across worker processes on one SQLite file, one Redis server and
one PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import Conveyor, JobState
from tests.conftest import server_param, shared_store_url
from tests.integration.limits_worker_app import hold
from tests.integration.records import written_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.integration.limits_worker_app"]


def _most_at_once(runs: Path) -> int:
    """The most runs that overlapped in time, over every process's spans."""
    edges: list[tuple[float, int]] = []
    for path in runs.glob("spans-*.txt"):
        for line in written_lines(path):
            start, end = map(float, line.split())
            edges += [(start, 1), (end, -1)]
    most = now = 0
    for _, step in sorted(edges):  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("kind", ["sqlite", server_param("redis"), server_param("postgres")])
async def test_global_concurrency_holds_across_three_processes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = shared_store_url(request, kind, tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    jobs, limit = 30, 2
    env = {**os.environ, "CONVEYOR_URL": url, "RUNS_DIR": str(runs)}
    async with Conveyor(url, log_level="WARNING", keep_completed=100_000) as producer:
        await producer.jobs.set_queue_limits("limited", concurrency=limit)
        task = producer.task(name="hold", queue="limited")(hold.fn)
        procs = [subprocess.Popen(WORKER, cwd=ROOT, env=env) for _ in range(3)]
        try:
            deadline = time.monotonic() + 60
            while len(await producer.store.workers()) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await producer.enqueue_many([task.call(0.03) for _ in range(jobs)])
            while time.monotonic() < deadline:
                counts = (await producer.jobs.counts()).get("limited", {})
                if counts.get(JobState.COMPLETED, 0) >= jobs:
                    break
                await asyncio.sleep(0.1)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
    assert counts.get(JobState.COMPLETED, 0) == jobs
    # Three processes of one slot each: three could run at once without the limit.
    assert _most_at_once(runs) == limit
    assert len(list(runs.glob("spans-*.txt"))) >= 2  # the work was shared between processes
