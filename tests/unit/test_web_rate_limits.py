"""Rate limits over HTTP, through Starlette's in-process test client, on the memory store.

A lost Redis under the layer is in tests/integration/test_web_rate_limits.py; the
products' scenario, proxies and a Redis outage over a real server in
tests/integration/test_web_rate_limits_server.py; the headers' serialization in
test_rate_headers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Annotated, Any

import http_sf
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.testclient import TestClient

from conveyor import (
    Caller,
    ConfigError,
    Conveyor,
    ProgrammingError,
    RateDecision,
    RateLimitOptions,
    RatePolicy,
    ServiceOptions,
    as_service,
    rate_key,
    rate_limit,
    request_timeout,
)

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
FREE = {"X-API-Key": "free-key"}
PRO = {"X-API-Key": "pro-key"}


def tiers_of_keys(calls: list[Caller]) -> Any:
    def tier(caller: Caller) -> str | None:
        calls.append(caller)
        return {"free-key": "free", "pro-key": "pro"}.get(caller.api_key or "")

    return tier


def service(
    app: Conveyor, *, options: RateLimitOptions | None = None, web: FastAPI | None = None
) -> FastAPI:
    web = web or FastAPI()

    @web.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return as_service(web, app, ServiceOptions(rate_limits=options or RateLimitOptions()))


def limits_of(response: Any) -> dict[str, dict[str, Any]]:
    """The RateLimit header, parsed: policy -> its parameters."""
    members = http_sf.parse(response.headers["ratelimit"].encode(), tltype="list")
    assert isinstance(members, list)
    return {str(m[0]): dict(m[1]) for m in members if isinstance(m, tuple)}


@pytest.fixture
def app() -> Conveyor:
    app = Conveyor("memory://", log_level="WARNING")
    app.rate_limits.add(
        RatePolicy("api", {"free": "20/minute", "pro": "100/minute"}),
        RatePolicy("expensive", {"free": "3/hour", "pro": "100/hour"}),
    )
    return app


# -- per route and global ------------------------------------------------------------


def test_a_routes_policies_are_checked_in_one_step(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("burst", "2/minute"))
    web = FastAPI()

    @web.post("/reports", dependencies=[Depends(rate_limit("expensive", "burst"))])
    async def report() -> dict[str, str]:
        return {"ok": "yes"}

    service(app, web=web)
    with TestClient(web, client=("203.0.113.9", 1000)) as client:
        answers = [client.post("/reports").status_code for _ in range(4)]
        assert answers == [200, 200, 429, 429]
        # The refused requests took nothing from "expensive": 3 an hour, 2 used.
        assert client.portal is not None
        key = rate_key(address="203.0.113.9")
        assert client.portal.call(_usage, app, "expensive", key) == 1


def test_a_policy_the_global_check_charged_is_not_charged_again_by_the_route(
    app: Conveyor,
) -> None:
    web = FastAPI()

    @web.get("/search")
    async def search(
        decision: Annotated[RateDecision, Depends(rate_limit("api", "expensive"))],
    ) -> dict[str, int]:
        return {"left": decision.quotas[-1].remaining}

    service(app, options=RateLimitOptions(global_policies=("api",)), web=web)
    with TestClient(web) as client:
        response = client.get("/search")
    assert response.json() == {"left": 2}
    assert limits_of(response) == {"api": {"r": 19, "t": 3}, "expensive": {"r": 2, "t": 1200}}


def test_global_policies_limit_every_route_but_not_the_probes(app: Conveyor) -> None:
    web = service(app, options=RateLimitOptions(global_policies=("api",)))
    with TestClient(web) as client:
        statuses = [client.get(f"/items/{n}").status_code for n in range(22)]
        assert statuses.count(200) == 20 and statuses[20:] == [429, 429]
        for probe in ("/livez", "/readyz", "/health", "/metrics"):
            response = client.get(probe)
            assert response.status_code == 200
            assert "ratelimit" not in response.headers


def test_without_policies_requests_pass_untouched() -> None:
    web = service(Conveyor("memory://", log_level="WARNING"))
    with TestClient(web) as client:
        response = client.get("/items/1")
    assert response.status_code == 200
    assert "ratelimit" not in response.headers and "ratelimit-policy" not in response.headers


# -- the 429 -------------------------------------------------------------------------


def test_the_429_is_a_quota_exceeded_problem_with_the_tier_context(app: Conveyor) -> None:
    options = RateLimitOptions(
        global_policies=("api",),
        tier=tiers_of_keys([]),
        upgrade_url="/api/subscription/checkout",
    )
    web = service(app, options=options)
    with TestClient(web) as client:
        for _ in range(20):
            assert client.get("/items/1", headers=FREE).status_code == 200
        refused = client.get("/items/1", headers=FREE)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"] == QUOTA_EXCEEDED
    assert body["status"] == 429
    assert body["violated-policies"] == ["api"]
    assert body["message"] == "Free tier rate limit exceeded. Upgrade to Pro for higher limits."
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["currentTier"] == "free"
    assert body["upgradeUrl"] == "/api/subscription/checkout"
    assert body["limits"] == {"current": 20, "pro": 100}
    assert body["retryAfter"] == int(refused.headers["retry-after"]) == 3
    assert limits_of(refused) == {"api": {"r": 0, "t": 3}}
    assert body["instance"] == "/items/1" and body["request_id"]


def test_the_last_tier_is_offered_no_upgrade_and_a_tier_may_have_its_own_message(
    app: Conveyor,
) -> None:
    app.rate_limits.add(RatePolicy("login", {"free": "1/minute", "pro": "1/minute"}))
    web = FastAPI()

    @web.post("/login", dependencies=[Depends(rate_limit("login"))])
    async def login() -> None:
        return None

    options = RateLimitOptions(tier=tiers_of_keys([]), messages={"free": "Slow down, free rider."})
    service(app, options=options, web=web)
    with TestClient(web) as client:
        client.post("/login", headers=PRO)
        pro = client.post("/login", headers=PRO).json()
        client.post("/login", headers=FREE)
        free = client.post("/login", headers=FREE).json()
    assert pro["message"] == "Pro tier rate limit exceeded."
    assert pro["limits"] == {"current": 1} and "upgradeUrl" not in pro
    assert free["message"] == free["detail"] == "Slow down, free rider."
    assert free["limits"] == {"current": 1}  # the pro tier allows no more here


def test_a_refusal_by_the_apps_own_limiter_gets_the_same_answer(app: Conveyor) -> None:
    web = FastAPI()
    limiter = app.rate_limits.limiter("expensive")

    @web.post("/jobs")
    async def start_job(request: Request) -> dict[str, str]:
        await limiter.hit("job-starter", tier="free")
        return {"started": "yes"}

    service(app, web=web)
    with TestClient(web) as client:
        statuses = [client.post("/jobs").status_code for _ in range(4)]
        refused = client.post("/jobs")
    assert statuses == [200, 200, 200, 429]
    assert refused.json()["violated-policies"] == ["expensive"]
    assert int(refused.headers["retry-after"]) >= limits_of(refused)["expensive"]["t"]


# -- who is calling, and the tier ----------------------------------------------------


def test_the_tier_comes_from_the_apps_function_cached_per_caller(app: Conveyor) -> None:
    calls: list[Caller] = []
    options = RateLimitOptions(global_policies=("api",), tier=tiers_of_keys(calls))
    web = service(app, options=options)
    with TestClient(web) as client:
        pro = [client.get("/items/1", headers=PRO).status_code for _ in range(100)]
        free = [client.get("/items/1", headers=FREE).status_code for _ in range(21)]
    assert pro == [200] * 100
    assert free == [200] * 20 + [429]
    assert [c.api_key for c in calls] == ["pro-key", "free-key"]  # once each


def test_keys_the_tier_function_does_not_know_share_their_addresses_quota(
    app: Conveyor,
) -> None:
    options = RateLimitOptions(global_policies=("api",), tier=tiers_of_keys([]))
    web = service(app, options=options)
    with TestClient(web, client=("198.51.100.7", 1)) as client:
        made_up = [
            client.get("/items/1", headers={"X-API-Key": f"guess-{n}"}).status_code
            for n in range(21)
        ]
        assert client.portal is not None
        usage = client.portal.call(_usage, app, "api", rate_key(address="198.51.100.7"))
    assert made_up == [200] * 20 + [429]  # not a fresh quota per invented key
    assert usage == 0


async def _usage(app: Conveyor, policy: str, key: str) -> int:
    return (await app.rate_limits.usage(policy, key, tier="free")).remaining


def test_an_identify_function_names_the_user_and_may_know_the_tier(app: Conveyor) -> None:
    def identify(request: Request) -> Caller | None:
        user = request.headers.get("x-user")
        return Caller(user=user, tier=request.headers.get("x-plan")) if user else None

    web = service(app, options=RateLimitOptions(global_policies=("api",), identify=identify))
    with TestClient(web) as client:
        ann = [
            client.get("/items/1", headers={"x-user": "ann", "x-plan": "pro"}).status_code
            for _ in range(25)
        ]
        bob = [client.get("/items/1", headers={"x-user": "bob"}).status_code for _ in range(21)]
    assert ann == [200] * 25  # pro: 100 a minute
    assert bob == [200] * 20 + [429]  # no tier: the lowest


# -- concurrency slots ---------------------------------------------------------------


@pytest.fixture
def exports_app() -> tuple[Conveyor, FastAPI]:
    app = Conveyor("memory://", log_level="WARNING")
    app.rate_limits.add(RatePolicy("exports", {"free": 1}, algorithm="concurrency", lease=300))
    web = FastAPI()
    gate = asyncio.Event()

    @web.post("/exports", dependencies=[Depends(rate_limit("exports"))])
    async def export(fail: bool = False) -> dict[str, str]:
        if fail:
            raise RuntimeError("the export broke")
        return {"export": "done"}

    @web.post("/exports/slow", dependencies=[Depends(rate_limit("exports"))])
    @request_timeout(0.2)
    async def slow_export() -> None:
        await asyncio.sleep(30)

    @web.get("/exports/stream", dependencies=[Depends(rate_limit("exports"))])
    async def stream() -> StreamingResponse:
        async def rows() -> AsyncIterator[bytes]:
            yield b"id,name\n"
            await gate.wait()  # until the client goes away

        return StreamingResponse(rows(), media_type="text/csv")

    as_service(web, app)
    return app, web


async def _free_slots(app: Conveyor) -> int:
    return (await app.rate_limits.usage("exports", "ip:unknown", tier="free")).remaining


def test_a_slot_is_held_for_the_request_and_given_back_when_it_ends_or_fails(
    exports_app: tuple[Conveyor, FastAPI],
) -> None:
    app, web = exports_app
    with TestClient(web, raise_server_exceptions=False) as client:
        for _ in range(3):
            ok = client.post("/exports")
            assert ok.status_code == 200
            assert limits_of(ok) == {"exports": {"r": 0}}  # its own slot, while it ran
        assert client.post("/exports", params={"fail": True}).status_code == 500
        assert client.post("/exports").status_code == 200
        assert client.post("/exports/slow").status_code == 504  # cancelled past its deadline
        assert client.post("/exports").status_code == 200
        assert client.portal is not None
        assert client.portal.call(_free_slots, app) == 1


async def test_a_slot_is_given_back_when_the_client_disconnects(
    exports_app: tuple[Conveyor, FastAPI],
) -> None:
    app, web = exports_app
    sent: list[dict[str, Any]] = []
    disconnect = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))
        if message.get("body"):
            disconnect.set()  # the first rows arrived; the client hangs up

    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/exports/stream", "raw_path": b"/exports/stream",
        "root_path": "", "query_string": b"", "headers": [], "client": None,
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    try:
        await asyncio.wait_for(web(scope, receive, send), 10)
        assert sent[0]["status"] == 200
        assert await _free_slots(app) == 1
    finally:
        await app.close()


# -- a limiter that fails closed -----------------------------------------------------


# -- metrics, OpenAPI, mistakes ------------------------------------------------------


def test_a_request_refused_before_routing_is_measured_under_its_route_template(
    app: Conveyor,
) -> None:
    web = FastAPI()
    tenants = APIRouter()

    @tenants.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    web.include_router(tenants, prefix="/t/{tenant}")
    service(app, options=RateLimitOptions(global_policies=("api",)), web=web)
    with TestClient(web) as client:
        for n in range(21):
            client.get(f"/t/acme/orders/{n}")
        client.post("/items/1")  # the path matches, the method does not
        metrics = client.get("/metrics").text
    refused = [line for line in metrics.splitlines() if 'status_code="429"' in line]
    assert any('http_route="/t/{tenant}/orders/{order_id}"' in line for line in refused)
    assert any('http_route="/items/{item_id}"' in line for line in refused)
    assert 'outcome="denied"' in metrics  # the limiter's own decision counter


def test_the_openapi_document_shows_the_answers_of_guarded_operations(app: Conveyor) -> None:
    web = FastAPI()

    @web.post("/exports", dependencies=[Depends(rate_limit("expensive", failure="closed"))])
    async def export() -> dict[str, str]:
        return {"ok": "yes"}

    @web.get("/free")
    async def unguarded() -> dict[str, str]:
        return {"ok": "yes"}

    service(app, web=web)
    document = web.openapi()
    exports = document["paths"]["/exports"]["post"]["responses"]
    assert exports["429"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/QuotaExceededProblem"
    }
    assert set(exports["429"]["headers"]) == {"RateLimit", "RateLimit-Policy", "Retry-After"}
    assert set(exports["200"]["headers"]) == {"RateLimit", "RateLimit-Policy"}
    assert "503" in exports
    assert "429" not in document["paths"]["/free"]["get"]["responses"]
    assert "429" not in document["paths"]["/items/{item_id}"]["get"]["responses"]
    assert "429" not in document["paths"]["/livez"]["get"]["responses"]
    problem = document["components"]["schemas"]["QuotaExceededProblem"]["allOf"][1]
    assert {"violated-policies", "retryAfter", "limits", "currentTier"} <= set(
        problem["properties"]
    )


def test_global_policies_guard_every_operation_in_the_openapi_document(app: Conveyor) -> None:
    web = service(app, options=RateLimitOptions(global_policies=("api",)))
    responses = web.openapi()["paths"]["/items/{item_id}"]["get"]["responses"]
    assert "429" in responses and "503" not in responses  # fails open by default


def test_the_service_does_not_start_when_a_named_policy_is_not_declared(app: Conveyor) -> None:
    web = FastAPI()

    @web.get("/a", dependencies=[Depends(rate_limit("expnsive"))])
    async def a() -> None:
        return None

    service(app, options=RateLimitOptions(global_policies=("apii",)), web=web)
    with pytest.raises(ConfigError) as raised, TestClient(web):
        pass
    assert len(raised.value.problems) == 2
    assert "'apii'" in str(raised.value) and "GET /a" in str(raised.value)


def test_rate_limit_outside_a_service_is_a_programming_error() -> None:
    web = FastAPI()

    @web.get("/a", dependencies=[Depends(rate_limit("api"))])
    async def a() -> None:
        return None

    with TestClient(web) as client, pytest.raises(ProgrammingError, match="as_service"):
        client.get("/a")


def test_bad_options_are_all_listed_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        ServiceOptions(
            rate_limits=RateLimitOptions(
                global_policies=["api"],  # type: ignore[arg-type]
                api_key_header="X API Key",
                tier_ttl=-1,
            )
        )
    assert len(raised.value.problems) == 3
    with pytest.raises(ProgrammingError):
        rate_limit()
    with pytest.raises(ProgrammingError):
        rate_limit("api", cost=0)


def test_behind_a_trusted_proxy_each_client_has_its_own_quota() -> None:
    app = Conveyor("memory://", trusted_proxies=["10.0.0.0/8"], log_level="WARNING")
    app.rate_limits.add(RatePolicy("api", "2/minute"))
    web = service(app, options=RateLimitOptions(global_policies=("api",)))

    def get(peer: str, forwarded: str) -> int:
        with TestClient(web, client=(peer, 1)) as client:
            return client.get("/items/1", headers={"X-Forwarded-For": forwarded}).status_code

    behind = [get("10.0.0.5", f"6.6.6.{n}, 203.0.113.{n % 2}") for n in range(5)]
    assert behind == [200, 200, 200, 200, 429]  # two clients, two each; the left is ignored
    direct = [get("198.51.100.1", f"203.0.113.{n}") for n in range(3)]
    assert direct == [200, 200, 429]  # not a proxy: its header is not read


def test_trusted_proxies_that_are_not_networks_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        Conveyor("memory://", trusted_proxies=["10.0.0.0/8", "the load balancer"])
