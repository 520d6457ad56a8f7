"""The management API in process (memory store, a loopback client): what each call answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from conveyor import AdminOptions, Conveyor, ServiceOptions, as_service
from conveyor.errors import ConfigError
from conveyor.web.service import bare_service

app = Conveyor("memory://")


@app.task(search=["customer_id"], queue="reports")
async def build(customer_id: int, password: str = "") -> str:
    return f"r{customer_id}"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bare_service(app), client=("127.0.0.1", 4321))
    async with app, httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


async def add(client: httpx.AsyncClient, customer_id: int) -> str:
    answer = await client.post(
        "/api/v1/queues/reports/jobs",
        json={"task": build.name, "args": [customer_id, "hunter2"]},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["args"] == [customer_id, "***"]
    job_id: str = answer.json()["id"]
    return job_id


async def test_search_finds_a_job_by_each_criterion(client: httpx.AsyncClient) -> None:
    wanted = await add(client, 42)
    await add(client, 43)
    for query in (
        f"id={wanted}",
        f"id_prefix={wanted[:-1]}",
        "field=customer_id=42",
        "task=" + build.name + "&queue=reports&state=waiting",
    ):
        page = (await client.get("/api/v1/jobs/search?" + query)).json()
        ids = [job["id"] for job in page["jobs"]]
        assert wanted in ids, query
        if not query.startswith("task"):
            assert ids == [wanted], query


async def test_a_search_without_a_criterion_is_a_400(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/jobs/search?queue=reports")
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"


async def test_an_unknown_task_is_404_and_bad_arguments_422(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/api/v1/queues/reports/jobs", json={"task": "os.system"})
    assert unknown.status_code == 404
    wrong = await client.post(
        "/api/v1/queues/reports/jobs", json={"task": build.name, "args": ["seven"]}
    )
    assert wrong.status_code == 422


async def test_actions_are_audited_with_who_what_and_counts(client: httpx.AsyncClient) -> None:
    await add(client, 7)
    cleaned = await client.post("/api/v1/queues/reports/clean", json={"state": "waiting"})
    assert cleaned.json()["count"] >= 1
    entries = (await client.get("/api/v1/audit")).json()["entries"]
    assert entries[0]["action"] == "queue.clean"
    assert entries[0]["actor"] == "loopback"
    assert entries[0]["counts"] == {"removed": cleaned.json()["count"]}
    assert entries[0]["request_id"]


def queues_also_at_api_prefix(web_app: Starlette) -> Starlette:
    options = ServiceOptions(
        admin=AdminOptions(api_prefix="/admin/api/v1", queues_also_at="/api/v1")
    )
    return as_service(web_app, app, options)


@pytest.mark.parametrize("web_app", [FastAPI, Starlette])
async def test_the_queue_endpoints_also_answer_at_queues_also_at(
    web_app: Callable[[], Starlette],
) -> None:
    service = queues_also_at_api_prefix(web_app())
    transport = httpx.ASGITransport(app=service, client=("127.0.0.1", 4321))
    async with app, httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        added = await http.post(
            "/api/v1/queues/reports/jobs", json={"task": build.name, "args": [5]}
        )
        assert added.status_code == 201, added.text
        assert added.headers["cache-control"] == "no-store"
        same = await http.get(f"/admin/api/v1/queues/reports/jobs/{added.json()['id']}")
        assert same.json()["args"] == [5]
        metrics = await http.get("/api/v1/queues/reports/metrics")
        assert metrics.json()["name"] == "reports"
        only_queues = await http.get("/api/v1/jobs/search?queue=reports")
        assert only_queues.status_code == 404  # the rest of the API stays at api_prefix


def test_queues_also_at_is_a_path_apart_from_the_other_prefixes() -> None:
    with pytest.raises(ConfigError) as raised:
        AdminOptions(api_prefix="/api/v1", queues_also_at="/api/v1")
    assert "queues_also_at must differ" in str(raised.value)
    with pytest.raises(ConfigError, match="queues_also_at must be a path"):
        AdminOptions(queues_also_at="api")


async def test_a_rate_period_the_limits_refuse_is_refused_by_the_schema(
    client: httpx.AsyncClient,
) -> None:
    """schemathesis found a period the schema allowed (> 0) and the limits refused (400)."""
    answer = await client.put("/api/v1/queues/reports/limits", json={"rate_period_seconds": 1e-4})
    assert answer.status_code == 422
    allowed = await client.put(
        "/api/v1/queues/reports/limits", json={"rate_limit": 5, "rate_period_seconds": 0.001}
    )
    assert allowed.status_code == 200, allowed.text
