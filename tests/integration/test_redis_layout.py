"""How the Redis store lays a job out: a waiting job's hash stays packed.

Redis packs a hash whose values are all short (a listpack); one long value
turns the whole hash into a hashtable, about 450 bytes more per job. So a
job's payload is a key of its own, ``cv:{<queue>}:args:<id>``, and the hash
keeps the short fields. Jobs written before that key keep their payload in the
hash; they still read, run and delete as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, JobState
from tests.redis_servers import RedisServer, running_server

pytestmark = [pytest.mark.redis]

PAD = "x" * 400


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    with running_server(directory=tmp_path / "redis") as server:
        yield server


def _app(server: RedisServer, ran: list[tuple[int, str]]) -> tuple[Conveyor, Any]:
    app = Conveyor(server.url, log_level="WARNING", keep_completed=0)

    @app.task(name="layout.pad", search=["n"])
    async def pad(n: int, text: str) -> None:
        ran.append((n, text))

    return app, pad


async def test_a_waiting_jobs_hash_is_packed_and_its_payload_a_key_of_its_own(
    server: RedisServer,
) -> None:
    ran: list[tuple[int, str]] = []
    app, pad = _app(server, ran)
    try:
        job = await pad.enqueue(7, PAD)
        client = server.client()
        job_key, args_key = f"cv:{{default}}:job:{job.id}", f"cv:{{default}}:args:{job.id}"
        assert client.object("encoding", job_key) == b"listpack"
        assert not client.hexists(job_key, "payload")
        payload = client.get(args_key)
        assert isinstance(payload, bytes) and PAD.encode() in payload

        # Every read gives the payload back: by id, in a listing, in a search.
        assert (await app.jobs.get(job.id)).args == ([7, PAD], {})
        [listed] = (await app.jobs.list_page(JobState.WAITING)).jobs
        assert listed.args == ([7, PAD], {})
        [found] = (await app.jobs.search(field=("n", 7))).jobs
        assert found.args == ([7, PAD], {})

        await app.work(burst=True, concurrency=1)
        assert ran == [(7, PAD)]
        # Deleted with its job (keep_completed=0 deletes a job as it completes).
        assert client.exists(job_key, args_key) == 0
    finally:
        await app.close()


async def test_a_job_written_with_its_payload_in_its_hash_still_reads_runs_and_deletes(
    server: RedisServer,
) -> None:
    ran: list[tuple[int, str]] = []
    app, pad = _app(server, ran)
    try:
        jobs = [await pad.enqueue(n, f"{PAD}{n}") for n in range(3)]
        client = server.client()
        for job in jobs:  # back to the layout of earlier versions
            job_key, args_key = f"cv:{{default}}:job:{job.id}", f"cv:{{default}}:args:{job.id}"
            client.hset(job_key, "payload", client.get(args_key))
            client.delete(args_key)

        assert (await app.jobs.get(jobs[0].id)).args == ([0, f"{PAD}0"], {})
        listed = (await app.jobs.list_page(JobState.WAITING)).jobs
        assert sorted(j.args[0][0] for j in listed) == [0, 1, 2]
        await app.work(burst=True, concurrency=1)
        assert sorted(ran) == [(n, f"{PAD}{n}") for n in range(3)]
        assert client.keys("cv:{default}:job:*") == []
    finally:
        await app.close()


async def test_the_marker_that_wakes_workers_holds_one_token_however_many_enqueues(
    server: RedisServer,
) -> None:
    ran: list[tuple[int, str]] = []
    app, pad = _app(server, ran)
    try:
        for n in range(5):
            await pad.enqueue(n, "")
        await app.enqueue_many([pad.call(n, "") for n in range(5, 10)])
        assert server.client().lrange("cv:{default}:marker", 0, -1) == [b"1"]
        await app.work(burst=True, concurrency=2)
        assert sorted(n for n, _ in ran) == list(range(10))
    finally:
        await app.close()
