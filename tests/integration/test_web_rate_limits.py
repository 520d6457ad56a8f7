"""Rate limits over HTTP when Redis is lost or slow under the layer, in process.

The rest of the layer is pinned in tests/unit/test_web_rate_limits.py (memory store)
and over a real server in test_web_rate_limits_server.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from conveyor import (
    Conveyor,
    RateLimitOptions,
    RatePolicy,
    ServiceOptions,
    as_service,
    rate_key,
    rate_limit,
)
from tests.redis_servers import RedisServer, running_server


def service(
    app: Conveyor, *, options: RateLimitOptions | None = None, web: FastAPI | None = None
) -> FastAPI:
    web = web or FastAPI()

    @web.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return as_service(web, app, ServiceOptions(rate_limits=options or RateLimitOptions()))


@pytest.mark.redis
@pytest.mark.parametrize("failure", ["open", "closed"])
def test_a_lost_store_answers_503_when_failing_closed_and_decides_locally_when_open(
    failure: str, tmp_path: Path
) -> None:
    with running_server(directory=tmp_path / "redis") as redis:
        app = Conveyor(
            redis.url, rate_limit_failure=failure, rate_limit_budget=0.05, log_level="WARNING"
        )
        app.rate_limits.add(RatePolicy("api", "3/minute"))
        web = service(app, options=RateLimitOptions(global_policies=("api",)))
        with TestClient(web) as client:
            assert client.get("/items/1").status_code == 200
            redis.kill()
            answers = [client.get("/items/1") for _ in range(5)]
    if failure == "open":  # this process's own count of the same policy decides
        assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
        return
    for response in answers:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        body = response.json()
        assert body["code"] == "RATE_LIMIT_UNAVAILABLE" and body["policies"] == ["api"]
        assert str(redis.port) not in response.text  # no store detail leaves the process


class SlowLink:
    """A TCP relay to a Redis server that holds every chunk ``delay`` seconds each way,
    and drops what it holds when the client hangs up (as a lost packet would)."""

    def __init__(self, port: int, delay: float) -> None:
        self.port = port
        self.delay = delay
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while chunk := await source.read(65536):
                await asyncio.sleep(self.delay)
                if reader.at_eof() or writer.is_closing():
                    return  # the client hung up: what was in flight is lost
                sink.write(chunk)
            sink.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except OSError:  # a side reset its connection: the relay ends with it
            up_writer.close()
            writer.close()


@pytest.mark.redis
async def test_a_slot_is_given_back_even_under_a_cancelled_anyio_scope(
    redis_server: RedisServer,
) -> None:
    """Outer middleware built on anyio (Starlette's BaseHTTPMiddleware) cancels a request
    by cancelling its scope: every await in it is cancelled again, the release's round
    trip to Redis too, unless it is shielded."""
    redis_server.flush()
    async with SlowLink(redis_server.port, delay=0.02) as url:
        app = Conveyor(url, rate_limit_budget=1.0, log_level="WARNING")
        app.rate_limits.add(RatePolicy("exports", 1, algorithm="concurrency", lease=300))
        web = FastAPI()
        running = asyncio.Event()

        @web.post("/exports", dependencies=[Depends(rate_limit("exports"))])
        async def export() -> None:
            running.set()  # it holds the slot
            await asyncio.sleep(30)

        as_service(web, app)
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/exports", "raw_path": b"/exports",
            "root_path": "", "query_string": b"", "headers": [], "client": ("192.0.2.1", 1),
            "server": ("127.0.0.1", 80),
        }  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            return None

        key = rate_key(address="192.0.2.1")
        try:
            assert (await app.rate_limits.usage("exports", key)).remaining == 1  # connected
            async with anyio.create_task_group() as requests:
                requests.start_soon(web, scope, receive, send)
                await running.wait()
                assert (await app.rate_limits.usage("exports", key)).remaining == 0
                requests.cancel_scope.cancel()
            assert (await app.rate_limits.usage("exports", key)).remaining == 1
        finally:
            await app.close()
