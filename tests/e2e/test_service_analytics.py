"""Analytics and exports over HTTP, on a service whose time zone is America/New_York:
events land on their local day, rollups are cached (X-Cache) and invalidated when a
rollup writes, and an export is a CSV of exactly the rows sent, to its owner only,
listed by page, and removed by the scheduled cleanup once it expires."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest

from tests.e2e.reference_service import json_of, reference_service, sign_up, wait_for
from tests.web_server import ServiceProcess

pytestmark = pytest.mark.slow

ZONE = "America/New_York"
EXPORT_TTL = 6.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with reference_service(
        tmp_path_factory.mktemp("analytics"),
        timezone=ZONE,
        export_ttl_seconds=str(EXPORT_TTL),
        export_cleanup_seconds="1",
    ) as running:
        yield running


def new_publisher(client: httpx.Client, headers: dict[str, str], name: str = "site") -> str:
    created = json_of(client.post("/api/v1/publishers", headers=headers, json={"name": name}), 201)
    return str(created["publisherId"])


def record(client: httpx.Client, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        batch = {"events": events[start : start + 1000]}
        json_of(client.post("/api/v1/analytics/events", headers=headers, json=batch), 202)


def test_events_count_on_their_local_day_and_a_rollup_invalidates_the_cached_answer(
    server: ServiceProcess,
) -> None:
    # 03:30 UTC on March 1st is 22:30 on February 29th in New York.
    late = {"name": "signup", "value": 2.5, "occurredAt": "2024-03-01T03:30:00Z"}
    noon = {"name": "signup", "value": 1.0, "occurredAt": "2024-03-01T17:00:00Z"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        publisher = new_publisher(client, headers)
        record(
            client,
            headers,
            [{**late, "publisherId": publisher}, {**noon, "publisherId": publisher}],
        )
        url = f"/api/v1/analytics/publishers/{publisher}/daily?start=2024-02-28&end=2024-03-02"
        first = client.get(url, headers=headers)
        second = client.get(url, headers=headers)
        for day in ("2024-02-29", "2024-03-01"):
            json_of(
                client.post("/api/v1/analytics/rollups", headers=headers, json={"day": day}), 202
            )
        fresh = wait_for(
            lambda: client.get(url, headers=headers), lambda a: len(a.json()["points"]) == 2
        )
        cached = client.get(url, headers=headers)
        hourly = json_of(
            client.get(
                f"/api/v1/analytics/publishers/{publisher}/hourly?day=2024-02-29", headers=headers
            )
        )
        stranger = client.get(url, headers=sign_up(client, name="other"))

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.json()["points"] == second.json()["points"] == []
    assert fresh.headers["x-cache"] == "MISS"  # the rollup dropped the cached empty answer
    assert cached.headers["x-cache"] == "HIT"
    assert fresh.json()["points"] == [
        {"period": "2024-02-29", "name": "signup", "events": 1, "valueSum": 2.5},
        {"period": "2024-03-01", "name": "signup", "events": 1, "valueSum": 1.0},
    ]
    assert hourly["points"] == [
        {"period": "2024-02-29T22", "name": "signup", "events": 1, "valueSum": 2.5}
    ]
    assert stranger.status_code == 404  # the owner check runs before the cache


def local_days(events: list[dict[str, Any]]) -> list[date]:
    """Each event's day in the service's time zone."""
    zone = ZoneInfo(ZONE)
    return [datetime.fromisoformat(e["occurredAt"]).astimezone(zone).date() for e in events]


def _events(publishers: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    return [
        {
            "publisherId": rng.choice(publishers),
            "name": rng.choice(["view", "click", "buy"]),
            "value": round(rng.uniform(0, 100), 2),
            "occurredAt": (start + timedelta(minutes=rng.randrange(60 * 24 * 20))).isoformat(),
        }
        for _ in range(count)
    ]


def _wait_finished(
    client: httpx.Client, headers: dict[str, str], export_id: str
) -> tuple[Any, list[str]]:
    statuses: list[str] = []

    def read() -> Any:
        state = json_of(client.get(f"/api/v1/exports/{export_id}", headers=headers))
        statuses.append(state["status"])
        return state

    done = wait_for(read, lambda s: s["status"] in ("completed", "failed"), timeout=60, every=0.02)
    return done, statuses


def test_an_export_is_the_csv_of_the_rows_sent_for_its_owner_only_until_it_expires(
    server: ServiceProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        publishers = [new_publisher(client, headers, f"site {n}") for n in range(3)]
        sent = _events(publishers, 6_000, seed=11)
        record(client, headers, sent)
        other = sign_up(client, name="other")
        record(client, other, _events([new_publisher(client, other)], 200, seed=12))

        body = {"start": "2024-05-03", "end": "2024-05-14"}
        queued = json_of(client.post("/api/v1/exports", headers=headers, json=body), 202)
        done, statuses = _wait_finished(client, headers, queued["exportId"])
        download = client.get(done["downloadUrl"], headers=headers)
        stolen = client.get(done["downloadUrl"], headers=other)
        listed = json_of(client.get("/api/v1/exports?size=1", headers=headers))
        expired = wait_for(
            lambda: json_of(client.get(f"/api/v1/exports/{queued['exportId']}", headers=headers)),
            lambda s: s["status"] == "expired",
            timeout=EXPORT_TTL + 10,
        )
        gone = client.get(done["downloadUrl"], headers=headers)

    assert queued["status"] == "pending"
    assert statuses[-1] == "completed" and set(statuses) <= {"pending", "processing", "completed"}
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    local = local_days(sent)
    wanted = [
        e
        for e, day in zip(sent, local, strict=True)
        if date(2024, 5, 3) <= day <= date(2024, 5, 14)
    ]
    assert done["rows"] == len(rows) == len(wanted)
    assert Counter(
        (r["publisher_id"], r["name"], float(r["value"]), r["day"]) for r in rows
    ) == Counter(
        (e["publisherId"], e["name"], e["value"], day.isoformat())
        for e, day in zip(sent, local, strict=True)
        if date(2024, 5, 3) <= day <= date(2024, 5, 14)
    )
    assert stolen.status_code == 404
    assert (listed["total"], len(listed["items"]), listed["hasNext"]) == (1, 1, False)
    assert expired["downloadUrl"] is None
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"


def test_an_export_of_another_accounts_publisher_is_not_found(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        owner = sign_up(client)
        publisher = new_publisher(client, owner)
        body = {"start": "2024-05-01", "end": "2024-05-02", "publisherId": publisher}
        refused = client.post("/api/v1/exports", headers=sign_up(client, name="other"), json=body)
        backwards = client.post(
            "/api/v1/exports", headers=owner, json={"start": "2024-05-02", "end": "2024-05-01"}
        )
    assert refused.status_code == 404
    assert backwards.status_code == 400
