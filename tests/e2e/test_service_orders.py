"""Orders over HTTP: commands and queries, pagination metadata, specification filters,
and the outbox: the audit row of an event exists exactly once even when the relay is
killed between the order's commit and the event's publish."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.e2e.reference_service import (
    json_of,
    reference_service,
    service_env,
    sign_up,
    wait_for,
)
from tests.web_server import ROOT, ServiceProcess

pytestmark = pytest.mark.slow


def order(reference: str, quantity: int = 1, price: int = 1000) -> dict[str, Any]:
    return {
        "reference": reference,
        "customer": f"Customer {reference}",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": quantity, "unitPriceCents": price}],
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with reference_service(tmp_path_factory.mktemp("orders")) as running:
        yield running


def test_an_order_is_created_with_its_audit_fields_and_processed_once(
    server: ServiceProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        account = json_of(client.get("/api/v1/account", headers=headers))
        created = json_of(client.post("/api/v1/orders", headers=headers, json=order("A-1", 3)), 201)
        url = f"/api/v1/orders/{created['orderId']}"
        processed = json_of(client.post(url + "/process", headers=headers))
        again = client.post(url + "/process", headers=headers)
        audit = wait_for(
            lambda: json_of(client.get(url + "/audit", headers=headers)),
            lambda rows: len(rows) == 2,
        )

    actor = f"account:{account['accountId']}"
    assert (created["status"], created["totalCents"], created["schemaVersion"]) == (
        "created",
        3000,
        1,
    )
    assert (created["createdBy"], created["updatedBy"]) == (actor, actor)
    assert processed["status"] == "processed" and processed["processedAt"]
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert [row["type"] for row in audit] == ["OrderCreated", "OrderProcessed"]


def test_a_taken_reference_is_a_conflict_and_writes_nothing(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        json_of(client.post("/api/v1/orders", headers=headers, json=order("DUP")), 201)
        taken = client.post("/api/v1/orders", headers=headers, json=order("DUP", 5))
        listed = json_of(client.get("/api/v1/orders", headers=headers))
    assert taken.status_code == 409
    assert taken.json()["detail"].startswith("order 'DUP' exists already")
    assert listed["total"] == 1
    assert listed["items"][0]["totalCents"] == 1000


def test_listings_page_and_filter_and_see_every_command_at_once(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        ids = [
            json_of(client.post("/api/v1/orders", headers=headers, json=order(f"R-{n}", n)), 201)[
                "orderId"
            ]
            for n in range(1, 8)
        ]

        def listing(**query: Any) -> Any:
            return json_of(client.get("/api/v1/orders", headers=headers, params=query))

        before = listing(status="processed")  # cached now; the commands below evict it
        for order_id in ids[:3]:
            json_of(client.post(f"/api/v1/orders/{order_id}/process", headers=headers))
        after = listing(status="processed")
        first = listing(size=3)
        last = listing(size=3, page=3)
        big_open = listing(notStatus="processed", minTotalCents=5000)
        either = listing(status=["created", "processed"], maxTotalCents=2000)
        stranger = client.get(f"/api/v1/orders/{ids[0]}", headers=sign_up(client, name="other"))

    assert before["total"] == 0
    assert after["total"] == 3
    assert (first["total"], first["page"], first["hasNext"], first["hasPrev"]) == (
        7,
        1,
        True,
        False,
    )
    assert (len(last["items"]), last["hasNext"], last["hasPrev"]) == (1, False, True)
    assert sorted(o["totalCents"] for o in big_open["items"]) == [5000, 6000, 7000]
    assert sorted(o["totalCents"] for o in either["items"]) == [1000, 2000]
    assert stranger.status_code == 404


def _relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m examples.service.relay``, its output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "examples.service.relay"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_the_audit_row_exists_exactly_once_when_the_relay_dies_between_commit_and_publish(
    tmp_path: Path,
) -> None:
    # The server runs no relay; the relay is its own process, as in production.
    env = service_env(tmp_path, outbox_relay="false")
    with (
        reference_service(tmp_path, outbox_relay="false") as running,
        httpx.Client(base_url=running.url, timeout=30) as client,
    ):
        headers = sign_up(client)
        # A relay that has made its first (empty) round and then waits an hour. Its start
        # is awaited, not timed: a loaded machine took over 3 s to import and open it.
        sleepy_log = tmp_path / "relay.log"
        sleepy = _relay({**env, "SERVICE_OUTBOX_INTERVAL": "3600"}, sleepy_log)
        try:
            wait_for(sleepy_log.read_text, lambda out: "outbox relay started" in out)
            time.sleep(1)  # its first round, a read of an empty table, right after the line
            assert sleepy.poll() is None, sleepy_log.read_text()
            order_k1 = order("K-1")
            created = json_of(client.post("/api/v1/orders", headers=headers, json=order_k1), 201)
            audit_url = f"/api/v1/orders/{created['orderId']}/audit"
            time.sleep(1)
            # Committed, not published.
            assert json_of(client.get(audit_url, headers=headers)) == []
        finally:
            sleepy.kill()  # SIGKILL: no shutdown, no last round
            sleepy.wait(10)
        assert json_of(client.get(audit_url, headers=headers)) == []

        # Two relays come up at once and both take the same committed row (SQLite has no
        # SKIP LOCKED): the bus and the audit table make their two publishes one row.
        relays = [_relay(env, tmp_path / f"relay-{n}.log") for n in (1, 2)]
        try:
            rows = wait_for(
                lambda: json_of(client.get(audit_url, headers=headers)), lambda r: len(r) > 0
            )
            time.sleep(2)  # time for a second delivery, had there been one
            settled = json_of(client.get(audit_url, headers=headers))
        finally:
            for relay in relays:
                relay.terminate()
            codes = [relay.wait(30) for relay in relays]

    assert [row["eventId"] for row in rows] == [f"order-{created['orderId']}-created"]
    assert settled == rows
    assert codes == [0, 0]
