"""The service layer through Starlette's in-process test client (with its lifespan).

What needs no socket: a plain Starlette app, the startup's settings check,
a degraded cache, methods the real servers refuse to parse, sync routes.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest
from fastapi import FastAPI
from pydantic_settings import BaseSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from conveyor import (
    ConfigError,
    ConflictError,
    Conveyor,
    EventMeta,
    ProgrammingError,
    RateLimitedError,
    ServiceOptions,
    as_service,
    request_timeout,
)
from tests.redis_servers import free_port


def test_a_plain_starlette_app_becomes_a_service() -> None:
    async def reserve(request: Request) -> JSONResponse:
        raise ConflictError("seat 12 is taken")

    async def limited(request: Request) -> JSONResponse:
        raise RateLimitedError("slow down", retry_after=2.5)

    web = Starlette(routes=[Route("/seats", reserve, methods=["POST"]), Route("/x", limited)])
    as_service(web, Conveyor("memory://"))
    with TestClient(web) as client:
        conflict = client.post("/seats")
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "application/problem+json"
        assert conflict.json()["detail"] == "seat 12 is taken"
        limited_answer = client.get("/x")
        assert limited_answer.status_code == 429
        assert limited_answer.headers["retry-after"] == "3"
        assert client.get("/nowhere").status_code == 404
        assert client.get("/readyz").json()["status"] == "pass"
        metrics = client.get("/metrics").text
        assert 'http_route="/seats"' in metrics
        assert client.get("/docs").status_code == 404  # no OpenAPI on a plain Starlette app


class _Required(BaseSettings):
    model_config = {"env_prefix": "WEBTEST_NOT_SET_"}
    database_url: str
    secret_key: str
    workers: int = 4


def test_startup_stops_on_bad_settings_with_every_problem_listed() -> None:
    web = as_service(FastAPI(), Conveyor("memory://"), ServiceOptions(settings=_Required))
    with pytest.raises(ConfigError) as raised, TestClient(web):
        pass
    assert len(raised.value.problems) == 2
    assert "database_url" in str(raised.value) and "secret_key" in str(raised.value)


def test_the_app_settings_are_on_the_app_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBTEST_NOT_SET_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("WEBTEST_NOT_SET_SECRET_KEY", "k")
    web = as_service(FastAPI(), Conveyor("memory://"), ServiceOptions(settings=_Required))
    with TestClient(web):
        assert web.state.settings.database_url == "sqlite://"


def test_bad_options_list_every_problem() -> None:
    with pytest.raises(ConfigError) as raised:
        ServiceOptions(request_timeout=-1, gzip_level=12, request_id_header="bad header")
    assert len(raised.value.problems) == 3


def test_as_service_twice_is_a_programming_error() -> None:
    web = as_service(FastAPI(), Conveyor("memory://"))
    with pytest.raises(ProgrammingError):
        as_service(web, Conveyor("memory://"))


def test_a_degraded_cache_is_warn_and_still_ready() -> None:
    app = Conveyor("memory://", cache_url=f"redis://127.0.0.1:{free_port()}/0")
    app.cache  # in use, so its check asks the (unreachable) shared tier
    web = as_service(FastAPI(), app)
    with TestClient(web) as client:
        ready = client.get("/readyz")
        health = client.get("/health")
    assert ready.status_code == 200
    assert ready.json()["status"] == "warn"
    assert health.status_code == 200
    cache = health.json()["checks"]["cache:responseTime"][0]
    assert cache["status"] == "warn"
    assert "unreachable" in cache["output"]


def test_a_failing_store_is_fail_and_not_ready() -> None:
    app = Conveyor("memory://")
    web = as_service(FastAPI(), app, ServiceOptions(health_cache_seconds=0))

    async def broken() -> None:
        raise ConnectionError("store down")

    with TestClient(web) as client:
        app.backend.ping = broken  # type: ignore[method-assign]
        assert client.get("/livez").status_code == 200  # liveness never asks the store
        assert client.get("/readyz").status_code == 503
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["store:responseTime"][0]["status"] == "fail"


def test_an_unknown_method_is_counted_as_other() -> None:
    web = as_service(FastAPI(), Conveyor("memory://"))

    @web.get("/things")
    async def things() -> list[int]:
        return []

    with TestClient(web) as client:
        assert client.request("PURGE", "/things").status_code == 405
        metrics = client.get("/metrics").text
    assert 'http_request_method="_OTHER"' in metrics
    assert 'http_request_method="PURGE"' not in metrics


def test_a_sync_route_past_its_timeout_is_a_504() -> None:
    web = as_service(FastAPI(), Conveyor("memory://"), ServiceOptions(request_timeout=None))

    @web.get("/sync")
    @request_timeout(0.1)
    def blocking() -> str:
        time.sleep(0.5)
        return "late"

    with TestClient(web) as client:
        assert client.get("/sync").status_code == 504


def test_an_event_published_by_a_request_carries_its_request_id() -> None:
    app = Conveyor("memory://")
    got: list[EventMeta] = []

    @dataclass
    class OrderPlaced:
        order_id: int

    @app.events.subscribe(OrderPlaced, group="audit")
    async def record(event: OrderPlaced, meta: EventMeta) -> None:
        got.append(meta)

    web = as_service(FastAPI(), app, ServiceOptions(run_workers=True))

    @web.post("/orders")
    async def place() -> dict[str, str]:
        await app.events.publish(OrderPlaced(1))
        return {}

    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with TestClient(web) as client:
        client.post("/orders", headers={"X-Request-ID": "order-1", "traceparent": traceparent})
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert got[0].request_id == "order-1"
    assert got[0].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_jobs_enqueued_outside_a_request_carry_no_context() -> None:
    app = Conveyor("memory://")

    @app.task
    async def noop() -> None: ...

    async def enqueue() -> tuple[str | None, str | None, bytes]:
        async with app:
            job = await noop.enqueue()
            return job.request_id, job.traceparent, job.record.options

    request_id, traceparent, options = asyncio.run(enqueue())
    assert (request_id, traceparent) == (None, None)
    assert "context" not in msgspec.json.decode(options)


def test_gzip_covers_streamed_bodies_and_leaves_encoded_ones_alone() -> None:
    web = as_service(FastAPI(), Conveyor("memory://"))

    @web.get("/streamed")
    async def streamed() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(50):
                yield f'{{"row": {i}, "pad": "{"x" * 40}"}}\n'.encode()

        return StreamingResponse(chunks(), media_type="application/x-ndjson")

    @web.get("/encoded")
    async def encoded() -> Response:
        body = gzip.compress(b"y" * 5000)
        return Response(body, headers={"Content-Encoding": "gzip"}, media_type="text/plain")

    with TestClient(web) as client:
        stream = client.get("/streamed", headers={"Accept-Encoding": "gzip"})
        assert stream.headers["content-encoding"] == "gzip"
        assert len(stream.text.splitlines()) == 50  # the client decoded it
        already = client.get("/encoded", headers={"Accept-Encoding": "gzip"})
        assert already.content == b"y" * 5000  # decoded once: not compressed twice
