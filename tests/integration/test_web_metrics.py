"""``/metrics`` of a running service: promtool-clean, bounded labels, one registry."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.web_server import ServiceProcess, running_service

DURATION = "http_server_request_duration_seconds"


@pytest.fixture
def client(web_service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_service.url, timeout=10) as http:
        yield http


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_metrics_pass_promtool(client: httpx.Client) -> None:
    client.get("/items/1")
    client.post("/charges", json={"amount": 3, "card_token": "t"})
    text = client.get("/metrics").text
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_thousand_ids_make_one_series(client: httpx.Client) -> None:
    for item_id in range(100_000, 101_000):
        assert client.get(f"/items/{item_id}").status_code == 200
    text = client.get("/metrics").text
    series = [
        (labels, value)
        for labels, value in samples(text, DURATION + "_count")
        if labels["http_route"] == "/items/{item_id}"
        and labels["http_response_status_code"] == "200"
    ]
    assert len(series) == 1
    assert series[0][0]["http_request_method"] == "GET"
    assert series[0][1] >= 1000
    assert "100500" not in text


def test_unmatched_requests_share_one_route_label(client: httpx.Client) -> None:
    for n in range(20):
        client.get(f"/no-such-page-{n}")
    text = client.get("/metrics").text
    routes = {labels["http_route"] for labels, _ in samples(text, DURATION + "_count")}
    assert "unmatched" in routes
    assert not [r for r in routes if "no-such-page" in r]


def test_every_route_label_is_a_template_or_unmatched(client: httpx.Client) -> None:
    client.get("/v1/items/12345")
    text = client.get("/metrics").text
    routes = {labels["http_route"] for labels, _ in samples(text, DURATION + "_count")}
    assert "/v1/items/{item_id}" in routes
    assert all(r == "unmatched" or "12345" not in r for r in routes)


def test_probes_are_kept_out_of_the_http_metrics(client: httpx.Client) -> None:
    for path in ("/livez", "/readyz", "/health", "/metrics"):
        client.get(path)
    text = client.get("/metrics").text
    routes = {labels["http_route"] for labels, _ in samples(text, DURATION + "_count")}
    assert not routes & {"/livez", "/readyz", "/health", "/metrics"}


def test_one_registry_holds_jobs_http_and_process_metrics(client: httpx.Client) -> None:
    job_id = client.post("/charges", json={"amount": 5, "card_token": "t"}).json()["job_id"]
    deadline = time.monotonic() + 10
    while client.get(f"/jobs/{job_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    text = client.get("/metrics").text
    for name in (
        "conveyor_jobs_completed_total",
        "conveyor_jobs",
        DURATION + "_bucket",
        "http_server_active_requests",
        "http_server_request_body_size_bytes_bucket",
        "http_server_response_body_size_bytes_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert samples(text, name), name
    buckets = {
        labels["le"]
        for labels, _ in samples(text, DURATION + "_bucket")
        if labels["http_route"] == "/charges"
    }
    assert buckets == {
        "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75",
        "1.0", "2.5", "5.0", "7.5", "10.0", "+Inf",
    }  # fmt: skip


@pytest.mark.slow
def test_several_server_processes_report_the_sum_of_all(tmp_path: Path) -> None:
    with running_service(
        "tests.integration.web_service_app:api",
        tmp_path / "server.log",
        args=("--workers", "2", "--no-worker"),
    ) as server:
        requests = 120
        for n in range(requests):  # a new connection each: both processes get some
            response = httpx.get(f"{server.url}/items/{n}", headers={"Connection": "close"})
            assert response.status_code == 200
        assert "Started parent process" in server.log()
        for _ in range(6):  # each scrape may be answered by either process
            text = httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}).text
            counted = [
                value
                for labels, value in samples(text, DURATION + "_count")
                if labels["http_route"] == "/items/{item_id}"
            ]
            assert counted == [requests]
            checked = subprocess.run(
                ["promtool", "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                check=False,
            )
            assert checked.returncode == 0, checked.stdout + checked.stderr
        assert server.terminate() == 0
