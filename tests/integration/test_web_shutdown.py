"""SIGTERM to ``conveyor serve`` while requests and jobs are in flight."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor, JobState
from tests.web_server import ServiceProcess

pytestmark = pytest.mark.slow

SHUTDOWN_SECONDS = 3


def active_requests(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_server_active_requests"
    )


def job_states(url: str, ids: list[str]) -> list[str]:
    return [httpx.get(f"{url}/jobs/{job_id}").json()["status"] for job_id in ids]


def test_sigterm_answers_every_request_and_finishes_or_releases_every_job(
    tmp_path: Path,
) -> None:
    db = tmp_path / "service.db"
    server = ServiceProcess(
        "tests.integration.web_service_app:api",
        tmp_path / "server.log",
        env={"WEB_TEST_URL": f"sqlite:///{db}", "WEB_TEST_SHUTDOWN": str(SHUTDOWN_SECONDS)},
    )
    try:
        server.wait_until_up()
        url = server.url
        short = [
            httpx.post(f"{url}/slow-jobs", params={"seconds": 1}).json()["job_id"] for _ in range(3)
        ]
        long = [
            httpx.post(f"{url}/slow-jobs", params={"seconds": 60}).json()["job_id"]
            for _ in range(2)
        ]
        deadline = time.monotonic() + 10
        while job_states(url, short + long) != ["active"] * 5:
            assert time.monotonic() < deadline, job_states(url, short + long)
            time.sleep(0.02)

        with ThreadPoolExecutor(10) as pool:
            answers = [
                pool.submit(httpx.get, f"{url}/slow", params={"seconds": 1.5}, timeout=30)
                for _ in range(10)
            ]
            deadline = time.monotonic() + 10
            while active_requests(url) < 10:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            stopped_at = time.monotonic()
            exit_code = server.terminate(timeout=30)
            took = time.monotonic() - stopped_at
            responses = [answer.result() for answer in answers]
    finally:
        server.kill()

    assert exit_code == 0, server.log()[-3000:]
    # HTTP drain (1.5 s of requests) + job drain (SHUTDOWN_SECONDS) + start-up slack
    assert took < 1.5 + SHUTDOWN_SECONDS + 5, took
    assert [r.status_code for r in responses] == [200] * 10
    # each request asked /readyz after the signal: readiness had failed at once
    assert [r.json()["ready_status"] for r in responses] == [503] * 10

    async def stored() -> dict[str, tuple[JobState, int]]:
        async with Conveyor(f"sqlite:///{db}") as app:
            jobs = [await app.jobs.get(job_id) for job_id in short + long]
            return {job.id: (job.status, job.attempts) for job in jobs}

    final = asyncio.run(stored())
    assert [final[j][0] for j in short] == [JobState.COMPLETED] * 3
    # released: back to waiting, the interrupted attempt not counted
    assert [final[j] for j in long] == [(JobState.WAITING, 0)] * 2
    assert "released unfinished jobs" in server.log()
