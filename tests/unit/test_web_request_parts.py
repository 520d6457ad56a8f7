"""The pure parts of the service layer: ids, trace context, route templates, query masking."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from conveyor.web.access_log import masked_query
from conveyor.web.context import accept_request_id, accept_traceparent
from conveyor.web.routes import route_template

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "raw", [b"abc", b"0f8fad5b-d9cb-469f-a165-70867728950e", b"01HZX3:worker.7", b"a" * 128]
)
def test_well_formed_request_ids_are_kept(raw: bytes) -> None:
    assert accept_request_id(raw) == raw.decode()


@pytest.mark.parametrize(
    "raw", [None, b"", b"a" * 129, b"has space", b"new\nline", b"-leading", b"caf\xc3\xa9", b"<x>"]
)
def test_malformed_request_ids_are_replaced(raw: bytes | None) -> None:
    made = accept_request_id(raw)
    assert len(made) == 32 and made != (raw or b"").decode(errors="replace")


def test_a_valid_traceparent_is_kept() -> None:
    assert accept_traceparent(VALID.encode()) == (VALID, "4bf92f3577b34da6a3ce929d0e0e4736")


def test_a_later_traceparent_version_is_read_by_its_first_fields() -> None:
    later = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"
    assert accept_traceparent(later)[0] == VALID


@pytest.mark.parametrize(
    "raw",
    [
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 with more
        b"garbage",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(raw: bytes) -> None:
    traceparent, trace_id = accept_traceparent(raw)
    assert traceparent.startswith(f"00-{trace_id}-") and traceparent.endswith("-00")
    assert trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_query_values_with_credential_names_are_masked() -> None:
    masked = masked_query(b"page=2&access_token=s3cr3t&API_KEY=k&sig=x&q=shoes&password=")
    assert masked == "page=2&access_token=***&API_KEY=***&sig=***&q=shoes&password=***"


def test_a_long_query_is_cut() -> None:
    assert len(masked_query(b"q=" + b"x" * 5000)) < 600


def _templates_seen(app: Starlette, paths: list[str]) -> list[str | None]:
    seen: list[str | None] = []

    class Record:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
            await self.inner(scope, receive, send)  # type: ignore[operator]
            if scope["type"] == "http":
                seen.append(route_template(scope))

    app.add_middleware(Record)
    with TestClient(app) as client:
        for path in paths:
            client.get(path)
    return seen


def test_fastapi_routes_included_with_a_prefix_keep_their_full_template() -> None:
    api = FastAPI()
    tenants = APIRouter()

    @tenants.get("/orders/{order_id}")
    async def order(tenant: str, order_id: int) -> int:
        return order_id

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    @api.get("/plain")
    async def plain(request: Request) -> str:
        return "ok"

    api.include_router(tenants, prefix="/v2/{tenant}")
    seen = _templates_seen(api, ["/items/5", "/v2/acme/orders/42", "/plain", "/missing"])
    assert seen == ["/items/{item_id}", "/v2/{tenant}/orders/{order_id}", "/plain", None]


def test_starlette_routes_and_mounts_keep_their_template() -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(
        routes=[
            Route("/users/{user_id}", hello),
            Mount("/v1", routes=[Route("/things/{thing_id}", hello)]),
        ]
    )
    seen = _templates_seen(app, ["/users/9", "/v1/things/3", "/v1/nothing"])
    assert seen == ["/users/{user_id}", "/v1/things/{thing_id}", "/v1"]
