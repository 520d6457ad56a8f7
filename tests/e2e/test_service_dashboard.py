"""conveyor's management API and dashboard inside the reference service, over HTTP: mounted
apart from the products' /api/v1, behind keys (viewer reads, operator acts, a customer's
API key is no admin key), its queue endpoints also at the products' own /api/v1/queues
paths behind the same keys, and showing the product's schedules in the configured time
zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest

from conveyor import new_api_key
from tests.e2e.reference_service import (
    json_of,
    reference_service,
    service_env,
    sign_up,
    wait_for,
)
from tests.web_server import ServiceProcess, running_service

pytestmark = pytest.mark.slow

ZONE = "Asia/Kolkata"  # +05:30: a whole-hour cron is at :30 in UTC
ADMIN = "/admin/api/v1"
OPERATOR, OPERATOR_KEY = new_api_key("ops", "operator")
VIEWER, VIEWER_KEY = new_api_key("support", "viewer")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("dashboard")
    env = {
        **service_env(root, timezone=ZONE),
        "CONVEYOR_ADMIN_KEYS": f"{OPERATOR_KEY.line()},{VIEWER_KEY.line()}",
    }
    with running_service("examples.service:app", root / "server.log", env=env) as running:
        yield running


def test_the_dashboard_asks_for_a_key_and_opens_with_one(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        anonymous = client.get("/dashboard/")
        viewer = client.get("/dashboard/", headers=bearer(VIEWER))
        landing = client.get("/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/dashboard/sign-in")
    assert viewer.status_code == 200
    assert "text/html" in viewer.headers["content-type"]
    assert "script-src 'self'" in viewer.headers["content-security-policy"]
    assert 'href="/dashboard"' in landing.text


def test_the_management_api_is_apart_and_keeps_its_roles(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        customer = sign_up(client)
        anonymous = client.get(f"{ADMIN}/queues")
        with_customer_key = client.get(f"{ADMIN}/queues", headers=customer)
        queues = client.get(f"{ADMIN}/queues", headers=bearer(VIEWER))
        refused = client.post(f"{ADMIN}/queues/default/pause", headers=bearer(VIEWER))
        paused = client.post(f"{ADMIN}/queues/default/pause", headers=bearer(OPERATOR))
        resumed = client.post(f"{ADMIN}/queues/default/resume", headers=bearer(OPERATOR))
        audit = json_of(client.get(f"{ADMIN}/audit", headers=bearer(VIEWER)))
    assert anonymous.status_code == 401
    assert with_customer_key.status_code == 401  # a product key opens no admin door
    assert queues.status_code == 200
    assert refused.status_code == 403
    assert (paused.status_code, resumed.status_code) == (200, 200)
    assert [(e["actor"], e["action"]) for e in audit["entries"][:2]] == [
        ("ops", "queue.resume"),
        ("ops", "queue.pause"),
    ]


PRODUCT_QUEUES = "/api/v1/queues"
AGGREGATE_DAY = "examples.service.analytics.rollups.aggregate_day"


def test_the_products_queue_paths_answer_behind_the_admin_keys(server: ServiceProcess) -> None:
    """Issue 13: the products' clients call /api/v1/queues/...; the management API's own
    handlers answer there, with its keys and roles."""
    paths = [
        ("GET", f"{PRODUCT_QUEUES}/metrics"),
        ("GET", f"{PRODUCT_QUEUES}/default/metrics"),
        ("POST", f"{PRODUCT_QUEUES}/default/jobs"),
        ("GET", f"{PRODUCT_QUEUES}/default/jobs/nope"),
        ("DELETE", f"{PRODUCT_QUEUES}/default/jobs/nope"),
        ("POST", f"{PRODUCT_QUEUES}/default/pause"),
        ("POST", f"{PRODUCT_QUEUES}/default/resume"),
        ("POST", f"{PRODUCT_QUEUES}/default/clean"),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        customer = sign_up(client, name="queue-client")
        for method, path in paths:
            for headers in ({}, customer):  # nobody, and a product key: no admin key
                refused = client.request(method, path, headers=headers, json={})
                assert refused.status_code == 401, (method, path, refused.text)
                assert refused.headers["content-type"] == "application/problem+json"
        for method, path in paths:
            if method != "GET":
                refused = client.request(method, path, headers=bearer(VIEWER), json={})
                assert refused.status_code == 403, (method, path, refused.text)

        metrics = json_of(client.get(f"{PRODUCT_QUEUES}/metrics?minutes=5", headers=bearer(VIEWER)))
        admin_metrics = json_of(
            client.get(f"{ADMIN}/queues/metrics?minutes=5", headers=bearer(VIEWER))
        )
        assert metrics["window_minutes"] == 5
        names = [queue["name"] for queue in metrics["queues"]]
        assert "default" in names
        assert names == [queue["name"] for queue in admin_metrics["queues"]]
        default = json_of(client.get(f"{PRODUCT_QUEUES}/default/metrics", headers=bearer(VIEWER)))
        assert (default["name"], default["window_minutes"]) == ("default", 60)

        paused = json_of(client.post(f"{PRODUCT_QUEUES}/default/pause", headers=bearer(OPERATOR)))
        resumed = json_of(client.post(f"{PRODUCT_QUEUES}/default/resume", headers=bearer(OPERATOR)))
        assert (paused["name"], paused["paused"], resumed["paused"]) == ("default", True, False)

        later = {"task": AGGREGATE_DAY, "args": ["2020-01-01"], "delay_seconds": 3600}
        added = json_of(
            client.post(f"{PRODUCT_QUEUES}/default/jobs", json=later, headers=bearer(OPERATOR)),
            201,
        )
        assert (added["task"], added["queue"], added["state"]) == (
            AGGREGATE_DAY,
            "default",
            "scheduled",
        )
        job = f"{PRODUCT_QUEUES}/default/jobs/{added['id']}"
        assert json_of(client.get(job, headers=bearer(VIEWER)))["args"] == ["2020-01-01"]
        would_clean = json_of(
            client.post(
                f"{PRODUCT_QUEUES}/default/clean",
                json={"state": "scheduled", "dry_run": True},
                headers=bearer(OPERATOR),
            )
        )
        assert would_clean == {
            "queue": "default",
            "state": "scheduled",
            "dry_run": True,
            "count": 1,
        }
        removed = client.delete(job, headers=bearer(OPERATOR))
        assert removed.status_code == 204
        assert client.get(job, headers=bearer(VIEWER)).status_code == 404

        now = {"task": AGGREGATE_DAY, "args": ["2020-01-02"]}
        ran = json_of(
            client.post(f"{PRODUCT_QUEUES}/default/jobs", json=now, headers=bearer(OPERATOR)), 201
        )
        done = wait_for(
            lambda: json_of(
                client.get(f"{PRODUCT_QUEUES}/default/jobs/{ran['id']}", headers=bearer(VIEWER))
            ),
            lambda job: job["state"] == "completed",
        )
        assert done["result"] == {"day": "2020-01-02", "publishers": 0}
        audit = json_of(client.get(f"{ADMIN}/audit", headers=bearer(VIEWER)))
    actions = [(e["actor"], e["action"]) for e in audit["entries"][:5]]
    assert actions == [
        ("ops", "job.add"),
        ("ops", "job.remove"),
        ("ops", "job.add"),
        ("ops", "queue.resume"),
        ("ops", "queue.pause"),
    ]


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE))


def test_the_products_schedules_fire_at_their_local_times(server: ServiceProcess) -> None:
    schedules = json_of(httpx.get(server.url + f"{ADMIN}/schedules", headers=bearer(VIEWER)))
    by_task = {s["task"].rsplit(".", 1)[-1]: s for s in schedules}

    def at(task: str) -> datetime:
        assert by_task[task]["tz"] == ZONE
        return local(by_task[task]["next_fire"])

    assert (at("daily_aggregation").hour, at("daily_aggregation").minute) == (1, 0)
    assert (at("daily_cleanup").hour, at("daily_cleanup").minute) == (2, 0)
    weekly = at("weekly_report")
    assert (weekly.weekday(), weekly.hour, weekly.minute) == (0, 8, 0)
    assert at("hourly_metrics").minute == 5
    assert at("warm_cache").minute % 5 == 0
    assert by_task["flush_usage"]["every_seconds"] == 300
    assert by_task["cleanup_exports"]["every_seconds"] == 3600


def test_without_keys_only_this_machine_gets_in(tmp_path: Path) -> None:
    with reference_service(tmp_path) as running:
        local_client = httpx.get(running.url + f"{ADMIN}/queues", timeout=30)
        # A loopback peer that says it forwards for someone else is not trusted as local.
        forwarded = httpx.get(
            running.url + f"{ADMIN}/queues", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30
        )
    assert local_client.status_code == 200
    assert forwarded.status_code == 401
