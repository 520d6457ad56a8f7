"""The HTTP response cache on a Starlette app (the local tier is enough to pin it)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from conveyor import Cache, ProgrammingError


def make_app(cache: Cache, calls: list[str]) -> Starlette:
    products = ["a"]

    @cache.response(
        ttl=60, vary_query=["page"], vary_headers=["accept-language"], tags=["products"]
    )
    async def list_products(request: Request) -> Response:
        calls.append(request.url.query)
        return JSONResponse({"products": products, "page": request.query_params.get("page")})

    @cache.invalidates("products")
    async def add_product(request: Request) -> Response:
        products.append((await request.json())["name"])
        return JSONResponse({"ok": True}, status_code=201)

    @cache.response(ttl=60)
    async def with_cookie(request: Request) -> Response:
        calls.append("cookie")
        response = JSONResponse({})
        response.set_cookie("session", "x")
        return response

    return Starlette(
        routes=[
            Route("/products", list_products),
            Route("/products", add_product, methods=["POST"]),
            Route("/cookie", with_cookie),
        ]
    )


def test_hits_misses_vary_etag_and_invalidation_on_write() -> None:
    calls: list[str] = []
    client = TestClient(make_app(Cache(), calls))
    first = client.get("/products?page=1&utm=x")
    assert first.headers["x-cache"] == "MISS"
    second = client.get("/products?page=1&utm=y")  # utm does not vary the key
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json() == {"products": ["a"], "page": "1"}
    assert client.get("/products?page=2").headers["x-cache"] == "MISS"
    assert (
        client.get("/products?page=1", headers={"accept-language": "fr"}).headers["x-cache"]
        == "MISS"
    )
    assert len(calls) == 3

    etag = second.headers["etag"]
    not_modified = client.get("/products?page=1", headers={"if-none-match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""

    assert client.post("/products", json={"name": "b"}).status_code == 201
    after = client.get("/products?page=1")
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["products"] == ["a", "b"]
    assert after.headers["etag"] != etag


def test_authenticated_requests_and_cookies_are_never_cached() -> None:
    calls: list[str] = []
    client = TestClient(make_app(Cache(), calls))
    for _ in range(2):
        response = client.get("/products", headers={"authorization": "Bearer t"})
        assert response.headers["x-cache"] == "BYPASS"
        assert client.get("/cookie").headers["x-cache"] == "BYPASS"
    assert len(calls) == 4


def test_authenticated_requests_are_cached_when_asked() -> None:
    cache = Cache()
    calls = 0

    @cache.response(ttl=60, cache_authenticated=True, vary_headers=["authorization"])
    async def me(request: Request) -> Response:
        nonlocal calls
        calls += 1
        return JSONResponse({"me": request.headers["authorization"]})

    client = TestClient(Starlette(routes=[Route("/me", me)]))
    assert client.get("/me", headers={"authorization": "a"}).headers["x-cache"] == "MISS"
    assert client.get("/me", headers={"authorization": "a"}).headers["x-cache"] == "HIT"
    assert client.get("/me", headers={"authorization": "b"}).json() == {"me": "b"}
    assert calls == 2


def test_cookies_bypass_and_background_tasks_run_and_vary_is_sent() -> None:
    from starlette.background import BackgroundTask

    cache = Cache()
    ran: list[str] = []

    @cache.response(ttl=60, vary_query=["q"], vary_headers=["accept-language"])
    async def search(request: Request) -> Response:
        ran.append(request.query_params.get("q", ""))
        return JSONResponse(
            {"q": request.query_params.get("q")}, background=BackgroundTask(ran.append, "task")
        )

    client = TestClient(Starlette(routes=[Route("/search", search)]))
    miss = client.get("/search?q=a")
    assert miss.headers["x-cache"] == "MISS"
    assert miss.headers["vary"] == "accept-language"
    assert ran == ["a", "task"]  # the endpoint's background task ran on the miss
    assert client.get("/search?q=a").headers["x-cache"] == "HIT"
    # A cookie may carry a session: never cached unless asked.
    with_cookie = client.get("/search?q=a", headers={"cookie": "session=s"})
    assert with_cookie.headers["x-cache"] == "BYPASS"
    # Values that would print alike are different keys.
    assert client.get("/search", params={"q": "a&b"}).headers["x-cache"] == "MISS"
    # If-None-Match: weak tags and * match.
    etag = client.get("/search?q=a").headers["etag"]
    for header in (f"W/{etag}", f'"x", {etag}', "*"):
        assert client.get("/search?q=a", headers={"if-none-match": header}).status_code == 304
    assert client.get("/search?q=a", headers={"if-none-match": '"other"'}).status_code == 200


async def test_a_cached_endpoint_without_the_request_among_its_arguments_is_refused() -> None:
    @Cache().response(ttl=60)
    async def no_request(page: int) -> Response:
        return JSONResponse({"page": page})

    with pytest.raises(ProgrammingError, match="needs the Request"):
        await no_request(1)
