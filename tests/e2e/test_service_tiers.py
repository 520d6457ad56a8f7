"""Tiers and visibility over HTTP: keys stored hashed and revocable, each plan's limits
(the stricter ones on exports), per-key usage counted in the cache and written to the
database only by the flush schedule, business metrics beside conveyor's, and a health
report that includes the service's own database."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.reference_service import json_of, reference_service, sign_up, wait_for
from tests.web_server import ServiceProcess

pytestmark = pytest.mark.slow

FLUSH_SECONDS = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiers")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServiceProcess]:
    with reference_service(root, usage_flush_seconds=str(FLUSH_SECONDS)) as running:
        yield running


def test_a_free_key_gets_its_plans_limit_and_the_documented_429(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client, tier="free")
        started = time.monotonic()
        answers: list[httpx.Response] = []
        while len(answers) < 300 and (not answers or answers[-1].status_code == 200):
            answers.append(client.get("/api/v1/account", headers=headers))
        elapsed = time.monotonic() - started
    passed = answers[:-1]
    refused = answers[-1]
    # 120/minute: a burst of 120, then one more each 0.5 s that went by.
    assert 120 <= len(passed) <= 120 + elapsed / 0.5 + 1
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["currentTier"] == "free"
    assert body["upgradeUrl"] == "/api/v1/subscription/checkout"
    assert body["limits"] == {"current": 120, "pro": 1200}
    assert int(refused.headers["retry-after"]) >= 1
    assert passed[0].headers["x-ratelimit-tier"] == "free"
    assert passed[0].headers["x-ratelimit-limit"] == "120"


def test_exports_have_the_stricter_hourly_limit(server: ServiceProcess) -> None:
    body = {"start": "2024-01-01", "end": "2024-01-02"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client, tier="free")
        codes = [
            client.post("/api/v1/exports", headers=headers, json=body).status_code
            for _ in range(11)
        ]
        still_general = client.get("/api/v1/account", headers=headers)
    assert codes == [202] * 10 + [429]
    assert still_general.status_code == 200


def test_keys_are_stored_hashed_and_a_revoked_key_is_refused_at_once(
    server: ServiceProcess, root: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        second = json_of(client.post("/api/v1/keys", headers=headers, json={"name": "ci"}), 201)
        second_headers = {"X-API-Key": second["apiKey"]}
        before = client.get("/api/v1/account", headers=second_headers)
        client.delete(f"/api/v1/keys/{second['keyId']}", headers=headers).raise_for_status()
        after = client.get("/api/v1/account", headers=second_headers)
        keys = json_of(client.get("/api/v1/keys", headers=headers))
    with sqlite3.connect(root / "service.db") as db:
        stored = [row for table in ("api_keys",) for row in db.execute(f"SELECT * FROM {table}")]
    assert before.status_code == 200
    assert after.status_code == 401
    assert [k["revoked"] for k in keys] == [False, True]
    assert all(headers["X-API-Key"] not in map(str, row) for row in stored)
    assert all(second["apiKey"] not in map(str, row) for row in stored)
    assert second["prefix"] == second["apiKey"][:12]


def test_usage_is_counted_in_the_cache_and_written_in_batches_by_the_flush(
    server: ServiceProcess, root: Path
) -> None:
    started = time.time()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        made = 0
        for _ in range(30):
            client.get("/api/v1/account", headers=headers).raise_for_status()
            made += 1
        answers = []

        def read() -> dict[str, int]:
            nonlocal made
            made += 1  # the usage request counts too
            key = json_of(client.get("/api/v1/usage", headers=headers))["keys"][0]
            answers.append((made, key["flushed"], key["pending"], key["keyId"]))
            return {"flushed": key["flushed"], "pending": key["pending"]}

        wait_for(
            read, lambda usage: usage["flushed"] >= 31, timeout=4 * FLUSH_SECONDS + 10, every=0.2
        )
        # Then as fast as it answers across two more flushes: a read that meets a flush
        # must still add up (it once counted a window in neither place, now and then).
        until = time.monotonic() + 2 * FLUSH_SECONDS
        while time.monotonic() < until:
            read()
    elapsed = time.time() - started
    key_id = answers[0][3]
    with sqlite3.connect(root / "service.db") as db:
        rows = list(
            db.execute(
                "SELECT window_start, requests FROM api_key_usage WHERE key_id = ?", (key_id,)
            )
        )

    assert all(flushed + pending == total for total, flushed, pending, _ in answers)
    assert answers[0][2] > 0  # counted, not yet written
    # One row per closed window, not one per request.
    assert sum(requests for _, requests in rows) == answers[-1][1]
    assert all(start % FLUSH_SECONDS == 0 for start, _ in rows)
    assert len(rows) <= elapsed / FLUSH_SECONDS + 2 < answers[-1][1]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_business_metrics_sit_beside_conveyors_and_pass_promtool(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        client.post(
            "/api/v1/orders",
            headers=headers,
            json={
                "reference": "M-1",
                "customer": "c",
                "currency": "EUR",
                "items": [{"sku": "s", "quantity": 1, "unitPriceCents": 5}],
            },
        ).raise_for_status()
        text = wait_for(
            lambda: client.get("/metrics").text,
            lambda t: 'service_notifications_total{event="OrderCreated"}' in t,
        )
    samples = _samples(text)
    assert samples[("service_orders_total", (("command", "create"),))] >= 1
    assert any(
        name == "http_server_request_duration_seconds_count"
        and ("http_route", "/api/v1/orders") in labels
        for name, labels in samples
    )
    assert any(name.startswith("service_db_query_duration_seconds") for name, _ in samples)
    assert any(name.startswith("conveyor_") for name, _ in samples)
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_health_includes_the_services_own_database_and_outbox(server: ServiceProcess) -> None:
    health = httpx.get(server.url + "/health", timeout=10)
    assert health.status_code == 200
    checks = health.json()["checks"]
    assert checks["database:responseTime"][0]["status"] == "pass"
    assert "affectsReadiness" not in checks["database:responseTime"][0]  # critical
    assert checks["outbox:responseTime"][0]["status"] == "pass"
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
