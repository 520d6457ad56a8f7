"""Billing validation over HTTP: upload -> 202 -> progress rises -> completed with the
findings the generator injected; a corrupt upload fails with a clear message."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from examples.billing import generate, rules

from tests.e2e.reference_service import json_of, reference_service, sign_up, wait_for
from tests.web_server import ServiceProcess

pytestmark = pytest.mark.slow

PHASES = {"parsing": (0, 50), "inserting": (50, 75), "rules": (75, 90), "saving": (90, 100)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with reference_service(tmp_path_factory.mktemp("validations")) as running:
        yield running


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("exports")
    generated = generate.generate(out, files=1, rows=20_000, seed=7)
    manifest = json.loads((out / "manifest.json").read_text())
    good = next(g for g in generated if not g.corrupt)
    corrupt = next(g for g in generated if g.corrupt)
    expected = next(f for f in manifest["files"] if Path(f["path"]).name == good.path.name)
    return {"good": good.path, "corrupt": corrupt.path, "expected": expected}


def upload(client: httpx.Client, headers: dict[str, str], name: str, data: bytes) -> Any:
    answer = client.post(
        "/api/v1/validations", headers=headers, files={"file": (name, data, "text/csv")}
    )
    return json_of(answer, 202)


def test_an_upload_is_validated_with_rising_progress_and_the_expected_findings(
    server: ServiceProcess, exports: dict[str, Any]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        queued = upload(client, headers, exports["good"].name, exports["good"].read_bytes())
        assert queued["status"] == "queued"
        assert queued["jobId"] == f"validation:{queued['validationId']}"

        seen: list[float] = []
        stages: list[tuple[str, float]] = []

        def read() -> Any:
            state = json_of(
                client.get(f"/api/v1/validations/{queued['validationId']}", headers=headers)
            )
            if state["status"] in ("queued", "processing"):
                seen.append(float(state["progress"].get("percent", 0.0)))
                if "stage" in state["progress"]:
                    stages.append((state["progress"]["stage"], seen[-1]))
            return state

        done = wait_for(read, lambda s: s["status"] in ("completed", "failed"), every=0.02)

    assert done["status"] == "completed", done
    assert seen == sorted(seen), "progress never goes back"
    assert len({p for p in seen if 0 < p < 100}) >= 2, f"progress did not rise: {seen}"
    for stage, percent in stages:  # each phase within its share of the bar
        low, high = PHASES[stage]
        assert low <= percent <= high, (stage, percent)
    assert [s for s, _ in stages] == sorted((s for s, _ in stages), key=list(PHASES).index)
    expected = exports["expected"]
    result = done["result"]
    assert result["rows"] == expected["rows"]
    assert result["valid"] == expected["valid"]
    assert result["invalid"] == expected["invalid"]
    assert result["findings"] == expected["findings"]
    assert result["totals"] == expected["totals"]
    assert (result["encoding"], result["delimiter"]) == ("utf-8", ",")


def test_findings_are_listed_by_page_with_their_metadata(
    server: ServiceProcess, exports: dict[str, Any]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        queued = upload(client, headers, "invoices.csv", exports["good"].read_bytes())
        url = f"/api/v1/validations/{queued['validationId']}"
        wait_for(
            lambda: json_of(client.get(url, headers=headers)), lambda s: s["status"] == "completed"
        )
        first = json_of(client.get(url + "/findings?rule=bad_email&size=5", headers=headers))
        last_page = -(-first["total"] // 5)
        last = json_of(
            client.get(url + f"/findings?rule=bad_email&size=5&page={last_page}", headers=headers)
        )
        stranger = sign_up(client, name="stranger")
        hidden = client.get(url, headers=stranger)

    assert first["total"] == exports["expected"]["findings"]["bad_email"]
    assert (first["page"], first["hasPrev"], first["hasNext"]) == (1, False, True)
    assert (last["hasNext"], last["hasPrev"]) == (False, True)
    assert {f["rule"] for f in first["items"] + last["items"]} == {"bad_email"}
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"


def test_a_corrupt_upload_fails_at_once_with_a_clear_message(
    server: ServiceProcess, exports: dict[str, Any]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        queued = upload(client, headers, "invoices.csv", exports["corrupt"].read_bytes())
        url = f"/api/v1/validations/{queued['validationId']}"
        done = wait_for(
            lambda: json_of(client.get(url, headers=headers)),
            lambda s: s["status"] in ("completed", "failed"),
        )
    assert done["status"] == "failed"
    assert done["error"] == "CorruptUploadError: the file is gzip-compressed, not CSV text"
    assert done["attempts"] in (None, 1)  # not retried: the same bytes would fail again


def test_a_semicolon_separated_cp1252_export_is_read_as_such(server: ServiceProcess) -> None:
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";")
    writer.writerow(rules.COLUMNS)
    writer.writerow(
        [
            "INV-1",
            "C-1",
            "Zoë Müller",
            "zoe@example.com",
            "2024-03-01",
            "2024-03-31",
            "12.50",
            "EUR",
            "open",
        ]
    )
    writer.writerow(
        [
            "INV-2",
            "C-2",
            "José Núñez",
            "not-an-email",
            "2024-03-01",
            "2024-03-31",
            "7.00",
            "EUR",
            "paid",
        ]
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        queued = upload(client, headers, "excel.csv", text.getvalue().encode("cp1252"))
        url = f"/api/v1/validations/{queued['validationId']}"
        done = wait_for(
            lambda: json_of(client.get(url, headers=headers)),
            lambda s: s["status"] in ("completed", "failed"),
        )
    assert done["status"] == "completed", done
    assert done["result"]["delimiter"] == ";"
    assert done["result"]["encoding"] == "cp1252"
    assert done["result"]["findings"] == {"bad_email": 1}
    assert done["result"]["totals"] == {"EUR": "12.50"}


def test_an_upload_without_a_key_is_refused_as_problem_details(server: ServiceProcess) -> None:
    answer = httpx.post(
        server.url + "/api/v1/validations", files={"file": ("x.csv", b"a,b\n", "text/csv")}
    )
    assert answer.status_code == 401
    assert answer.json()["title"] == "API key required"
