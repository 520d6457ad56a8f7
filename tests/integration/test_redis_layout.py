"""How the Redis store lays a job out: a waiting job's hash stays packed.

Redis packs a hash whose values are all short (a listpack); one long value
turns the whole hash into a hashtable, about 450 bytes more per job. So a
job's payload is a key of its own, ``cv:{<queue>}:args:<id>``, and the hash
keeps the short fields. Jobs written before that key keep their payload in the
hash; they still read, run and delete as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, JobState
from conveyor.stores.redis.keys import args_key, job_key
from tests.redis_servers import RedisServer, running_server

pytestmark = [pytest.mark.redis]

PAD = "x" * 400


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    with running_server(directory=tmp_path / "redis") as server:
        yield server


@dataclass
class _Layout:
    app: Conveyor
    pad: Any
    client: Any
    """A redis-py client of the server, to look at the keys."""
    ran: list[tuple[int, str]] = field(default_factory=list)


@pytest.fixture
async def layout(server: RedisServer) -> AsyncIterator[_Layout]:
    app = Conveyor(server.url, log_level="WARNING", keep_completed=0)
    ran: list[tuple[int, str]] = []

    @app.task(name="layout.pad", search=["n"])
    async def pad(n: int, text: str) -> None:
        ran.append((n, text))

    try:
        yield _Layout(app, pad, server.client(), ran)
    finally:
        await app.close()


async def test_a_waiting_jobs_hash_is_packed_and_its_payload_a_key_of_its_own(
    layout: _Layout,
) -> None:
    app, pad, client, ran = layout.app, layout.pad, layout.client, layout.ran
    job = await pad.enqueue(7, PAD)
    hash_key, payload_key = job_key("default", job.id), args_key("default", job.id)
    assert client.object("encoding", hash_key) == b"listpack"
    assert not client.hexists(hash_key, "payload")
    payload = client.get(payload_key)
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
    assert client.exists(hash_key, payload_key) == 0


async def test_a_job_written_with_its_payload_in_its_hash_still_reads_runs_and_deletes(
    layout: _Layout,
) -> None:
    app, pad, client, ran = layout.app, layout.pad, layout.client, layout.ran
    jobs = [await pad.enqueue(n, f"{PAD}{n}") for n in range(3)]
    for job in jobs:  # back to the layout of earlier versions
        hash_key, payload_key = job_key("default", job.id), args_key("default", job.id)
        client.hset(hash_key, "payload", client.get(payload_key))
        client.delete(payload_key)

    assert (await app.jobs.get(jobs[0].id)).args == ([0, f"{PAD}0"], {})
    listed = (await app.jobs.list_page(JobState.WAITING)).jobs
    assert sorted(j.args[0][0] for j in listed) == [0, 1, 2]
    await app.work(burst=True, concurrency=1)
    assert sorted(ran) == [(n, f"{PAD}{n}") for n in range(3)]
    assert client.keys("cv:{default}:job:*") == []


async def test_the_marker_that_wakes_workers_holds_one_token_however_many_wake_ups(
    layout: _Layout,
) -> None:
    app, pad, client, ran = layout.app, layout.pad, layout.client, layout.ran
    for n in range(5):
        await pad.enqueue(n, "")
    await app.enqueue_many([pad.call(n, "") for n in range(5, 10)])
    assert client.lrange("cv:{default}:marker", 0, -1) == [b"1"]
    for _ in range(3):  # a resume wakes workers the same way
        await app.jobs.pause("default")
        await app.jobs.resume("default")
    assert client.lrange("cv:{default}:marker", 0, -1) == [b"1"]
    await app.work(burst=True, concurrency=2)
    assert sorted(n for n, _ in ran) == list(range(10))
