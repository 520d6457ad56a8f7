"""The Redis store's pipelined script connection (stores/redis/pipe.py): every caller
gets its own reply, concurrent callers share one socket, errors are redis-py's, and a
lost server is a ConnectionError until it is back.

Each test starts its own redis-server, since some stop it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvloop
from redis import exceptions as redis_errors

from conveyor import Conveyor
from conveyor.stores.redis.pipe import ScriptPipe, pack, reply_error
from tests.redis_servers import RedisServer, running_server

pytestmark = [pytest.mark.redis]

TIMEOUT = 5.0


@contextmanager
def _server_and_pipe(
    tmp_path: Path, timeout: float = TIMEOUT
) -> Iterator[tuple[RedisServer, ScriptPipe]]:
    """A redis-server of the test's own and a pipe to it (closed at the end)."""
    with running_server(directory=tmp_path / "redis") as server:
        pipe = ScriptPipe(server.url, timeout)
        try:
            yield server, pipe
        finally:
            pipe.close()


def _clients(server_client: object) -> int:
    return int(server_client.info("clients")["connected_clients"])  # type: ignore[attr-defined]


async def test_concurrent_requests_get_their_own_replies_over_one_socket(tmp_path: Path) -> None:
    with _server_and_pipe(tmp_path) as (server, pipe):
        admin = server.client()
        before = _clients(admin)
        replies = await asyncio.gather(*(pipe.request(pack("ECHO", f"r{i}")) for i in range(500)))
        assert replies == [f"r{i}".encode() for i in range(500)]
        assert _clients(admin) == before + 1


async def test_an_error_reply_is_raised_as_redis_py_raises_it_and_the_pipe_goes_on(
    tmp_path: Path,
) -> None:
    with _server_and_pipe(tmp_path) as (_server, pipe):
        with pytest.raises(redis_errors.NoScriptError):
            await pipe.request(pack("EVALSHA", "0" * 40, 0))
        with pytest.raises(redis_errors.ResponseError, match=r"^ERR unknown command"):
            await pipe.request(pack("NOSUCHCOMMAND"))
        assert await pipe.request(pack("ECHO", "after")) == b"after"
    assert isinstance(reply_error("OOM command not allowed"), redis_errors.OutOfMemoryError)
    assert isinstance(reply_error("BUSY Redis is busy"), redis_errors.ResponseError)


async def test_a_caller_that_gave_up_does_not_shift_the_next_callers_reply(
    tmp_path: Path,
) -> None:
    with _server_and_pipe(tmp_path) as (_server, pipe):
        await pipe.request(pack("PING"))  # connected
        slow = asyncio.ensure_future(pipe.request(pack("BLPOP", "nothing", "0.3")))
        await asyncio.sleep(0.05)
        slow.cancel()
        # Sent behind the BLPOP on the same socket: answered after it, and its own.
        assert await pipe.request(pack("ECHO", "mine")) == b"mine"


async def test_a_stopped_server_is_a_connection_error_until_it_is_back(tmp_path: Path) -> None:
    with _server_and_pipe(tmp_path) as (server, pipe):
        assert await pipe.request(pack("PING")) == b"PONG"
        port = server.port
        server.stop()
        with pytest.raises((redis_errors.ConnectionError, OSError)):
            await pipe.request(pack("PING"))
        server.start((port,))  # the same port: the pipe's address
        assert await pipe.request(pack("PING")) == b"PONG"


async def test_many_coroutines_enqueueing_at_once_each_get_their_job(tmp_path: Path) -> None:
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, log_level="WARNING")

        @app.task
        async def echo(n: int) -> int:
            return n

        try:
            jobs = await asyncio.gather(
                *(echo.options(job_id=f"j{n}").enqueue(n) for n in range(300))
            )
            assert [j.id for j in jobs] == [f"j{n}" for n in range(300)]
            stats = await app.work(burst=True, concurrency=20)
            assert stats.completed == 300
            results = await asyncio.gather(*(app.jobs.get(f"j{n}") for n in range(0, 300, 37)))
            assert [j.result for j in results] == list(range(0, 300, 37))
        finally:
            await app.close()


async def test_requests_to_a_server_that_stopped_answering_fail_at_the_timeout(
    tmp_path: Path,
) -> None:
    with _server_and_pipe(tmp_path, 0.5) as (server, pipe):
        try:
            assert await pipe.request(pack("PING")) == b"PONG"
            server.freeze()  # SIGSTOP: the socket stays open and nothing answers
            started = time.monotonic()
            first = asyncio.ensure_future(pipe.request(pack("ECHO", "first")))
            await asyncio.sleep(0.2)
            second = asyncio.ensure_future(pipe.request(pack("ECHO", "second")))
            # The oldest request's deadline fails both: the connection is given up.
            for waiting in (first, second):
                with pytest.raises(TimeoutError):
                    await waiting
            assert 0.5 <= time.monotonic() - started < 5.0  # at its deadline, not a hang
            server.thaw()
            assert await pipe.request(pack("ECHO", "after")) == b"after"  # a new connection
        finally:
            server.thaw()


async def test_a_busy_connection_is_not_failed_while_each_reply_comes_in_time(
    tmp_path: Path,
) -> None:
    with _server_and_pipe(tmp_path, 1.0) as (_server, pipe):
        # Requests for 3 s, three timeouts' worth, each answered within 0.1 s.
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            replies = await asyncio.gather(
                pipe.request(pack("BLPOP", "nothing", "0.1")), pipe.request(pack("PING"))
            )
            assert list(replies) == [None, b"PONG"]


def test_scripts_go_through_the_pipe_on_uvloop(tmp_path: Path) -> None:
    """`conveyor serve` runs on uvloop, whose transports derive from none of asyncio's
    classes: the pipe refused them, and every script call of a served app hung."""
    with running_server(directory=tmp_path / "redis") as server:

        async def main() -> None:
            app = Conveyor(server.url, log_level="WARNING", store_timeout=TIMEOUT)

            @app.task
            async def echo(n: int) -> int:
                return n

            try:
                jobs = await asyncio.gather(*(echo.enqueue(n) for n in range(20)))
                stats = await app.work(burst=True, concurrency=5)
                assert stats.completed == 20
                assert [(await app.jobs.get(j.id)).result for j in jobs] == list(range(20))
                assert app.backend.conn._pipe.loop is asyncio.get_running_loop()  # type: ignore[attr-defined]
            finally:
                await app.close()

        uvloop.run(main())
