"""A service made with ``as_service``, run by ``conveyor serve`` on uvicorn, over sockets."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.web_server import ServiceProcess

PROBLEM = "application/problem+json"


@pytest.fixture
def service(web_service: ServiceProcess) -> ServiceProcess:
    return web_service


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=10) as http:
        yield http


def wait_for_job(client: httpx.Client, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] == "completed":
            return dict(job)
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not complete: {job}")


def lines_with(service: ServiceProcess, **fields: object) -> list[dict[str, object]]:
    """The server's log lines with these fields, waiting a little for one to be written
    (a line may be written just after its response was sent)."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            line
            for line in service.json_lines()
            if all(line.get(k) == v for k, v in fields.items())
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


# -- request context -----------------------------------------------------------------


def test_a_well_formed_request_id_is_kept_and_returned(client: httpx.Client) -> None:
    response = client.get("/items/1", headers={"X-Request-ID": "req-0001.abc"})
    assert response.headers["x-request-id"] == "req-0001.abc"


def test_a_missing_or_malformed_request_id_is_replaced(client: httpx.Client) -> None:
    made = client.get("/items/1").headers["x-request-id"]
    replaced = client.get("/items/1", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    assert replaced.headers["x-request-id"] != made


def test_a_job_enqueued_by_a_request_carries_its_request_id_and_traceparent(
    client: httpx.Client, service: ServiceProcess
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = client.post(
        "/charges",
        json={"amount": 12, "card_token": "tok_visa"},
        headers={"X-Request-ID": "checkout-42", "traceparent": traceparent},
    )
    assert response.status_code == 201
    job = wait_for_job(client, response.json()["job_id"])
    assert job["request_id"] == "checkout-42"
    assert job["traceparent"] == traceparent
    # the worker's log lines for that job carry the request's ids
    worker_lines = lines_with(service, event="charging", job_id=job["id"])
    assert worker_lines, service.log()[-3000:]
    assert worker_lines[0]["request_id"] == "checkout-42"
    assert worker_lines[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_one_access_log_line_per_request_with_route_status_and_request_id(
    client: httpx.Client, service: ServiceProcess
) -> None:
    client.get("/items/77?page=2&token=abc123", headers={"X-Request-ID": "access-1"})
    lines = lines_with(service, event="request", request_id="access-1")
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET"
    assert line["route"] == "/items/{item_id}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["query"] == "page=2&token=***"
    assert "/items/77" not in json.dumps(line)


def test_probes_are_kept_out_of_the_access_log(
    client: httpx.Client, service: ServiceProcess
) -> None:
    for path in ("/livez", "/readyz", "/health", "/metrics"):
        client.get(path, headers={"X-Request-ID": "probe-1"})
    client.get("/items/1", headers={"X-Request-ID": "after-probes"})
    assert lines_with(service, event="request", request_id="after-probes")
    assert not [line for line in service.json_lines() if line.get("request_id") == "probe-1"]


# -- errors --------------------------------------------------------------------------


def test_an_unknown_route_is_a_404_problem(client: httpx.Client) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["request_id"] == response.headers["x-request-id"]


def test_a_wrong_method_is_a_405_problem_with_allow(client: httpx.Client) -> None:
    response = client.delete("/items/3")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert "GET" in response.headers["allow"]


def test_a_validation_error_is_422_with_json_pointers_and_no_input_echoed(
    client: httpx.Client,
) -> None:
    response = client.post("/charges", json={"amount": 0, "card_token": "tok_secret_value"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["errors"] == [{"pointer": "/body/amount", "detail": body["errors"][0]["detail"]}]
    assert "tok_secret_value" not in response.text


def test_conveyor_errors_map_to_their_status(client: httpx.Client) -> None:
    response = client.get("/items/-5")
    assert response.status_code == 404
    assert response.json()["detail"] == "no item -5"


def test_an_application_problem_keeps_its_type_title_and_extensions(
    client: httpx.Client,
) -> None:
    response = client.post("/charges", json={"amount": 600_000, "card_token": "t"})
    assert response.status_code == 403
    body = response.json()
    assert body["type"] == "https://billing.example/problems/out-of-credit"
    assert body["title"] == "Not enough credit"
    assert body["limit"] == 500_000


def test_an_unhandled_exception_is_a_generic_500_with_the_traceback_in_the_log(
    client: httpx.Client, service: ServiceProcess
) -> None:
    response = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "internal detail" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["request_id"] == "boom-1"
    logged = lines_with(service, event="unhandled error", request_id="boom-1")
    assert "Traceback" in str(logged[0]["exception"])


def test_a_request_past_its_route_timeout_is_a_504_problem(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/too-slow")
    assert response.status_code == 504
    assert response.headers["content-type"] == PROBLEM
    assert time.monotonic() - started < 3


# -- compression ---------------------------------------------------------------------


def test_a_body_over_1kb_is_gzipped(client: httpx.Client) -> None:
    response = client.get("/catalogue?limit=50", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.json()) == 50


def test_a_small_body_is_not_gzipped(client: httpx.Client) -> None:
    response = client.get("/items/1", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_x_no_compression_turns_gzip_off(client: httpx.Client) -> None:
    response = client.get(
        "/catalogue?limit=50", headers={"Accept-Encoding": "gzip", "x-no-compression": "1"}
    )
    assert "content-encoding" not in response.headers
    assert len(response.content) > 1024


def test_server_sent_events_are_never_gzipped(client: httpx.Client) -> None:
    with client.stream("GET", "/stream", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert "content-encoding" not in response.headers
    assert raw.startswith(b"data: ")
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(raw)


# -- health --------------------------------------------------------------------------


def test_livez_readyz_and_health_answer_health_json(client: httpx.Client) -> None:
    for path in ("/livez", "/live", "/readyz", "/ready", "/health", "/health/detailed"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/health+json"
        assert response.json()["status"] == "pass"


def test_health_is_detailed_after_the_health_check_draft(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["version"] == "2.3.0"
    assert body["environment"] == "test"
    store = body["checks"]["store:responseTime"][0]
    assert store["componentType"] == "datastore"
    assert store["observedUnit"] == "ms"
    assert store["status"] == "pass"
    assert body["checks"]["uptime"][0]["observedValue"] > 0


# -- versions ------------------------------------------------------------------------


def test_a_retired_version_says_so_in_its_headers(client: httpx.Client) -> None:
    old = client.get("/v1/items/3")
    assert old.status_code == 200
    assert old.headers["deprecation"] == "@1767225600"
    assert old.headers["sunset"] == "Fri, 01 Jan 2027 00:00:00 GMT"
    assert 'rel="deprecation"' in old.headers["link"]
    assert "deprecation" not in client.get("/items/3").headers


# -- OpenAPI and docs ------------------------------------------------------------------


def test_openapi_documents_problems_and_probes(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/livez", "/readyz", "/health", "/metrics", "/live", "/ready"):
        assert path in schema["paths"], path
    charges = schema["paths"]["/charges"]["post"]["responses"]
    assert set(charges["422"]["content"]) == {PROBLEM}
    assert set(charges["default"]["content"]) == {PROBLEM}
    assert "Problem" in schema["components"]["schemas"]


def test_swagger_ui_is_served_from_the_package_with_no_inline_script(
    client: httpx.Client,
) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    assert re.search(r"<script>", page.text) is None
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
        assert client.get(f"/docs/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 404


def test_unhandled_paths_do_not_touch_uvicorn_access_log(service: ServiceProcess) -> None:
    """uvicorn's access line would print the raw query; only conveyor's line is written."""
    assert not [line for line in service.log_lines() if '" 200' in line and "GET /" in line]


def test_a_missing_app_path_fails_clearly(tmp_path: Path) -> None:
    server = ServiceProcess("tests.integration.no_such_module:api", tmp_path / "log")
    assert server.process.wait(30) != 0
    server.kill()
    assert "cannot import module" in server.log()
