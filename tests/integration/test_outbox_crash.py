"""The outbox across real crashes: processes SIGKILLed between commit and relay, and
between the relay's publish and its delete. The event is delivered once either way.

The application's database is a SQLite file; the bus is a SQLite or a PostgreSQL store.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from conveyor import Conveyor, EventMeta
from tests.conftest import server_param, shared_store_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, os, signal, sqlite3, sys

import msgspec

from conveyor import Conveyor
from conveyor.events.outbox import Outbox


class OrderPlaced(msgspec.Struct):
    order_id: int


app = Conveyor(sys.argv[1], log_level="WARNING")
outbox = app.events.outbox()
app_db = sys.argv[2]
step = sys.argv[3]

if step == "commit-then-die":
    conn = sqlite3.connect(app_db)
    with conn:
        conn.execute("INSERT INTO orders (id) VALUES (1)")
        outbox.add(conn, OrderPlaced(1), event_id="order-1")
    os.kill(os.getpid(), signal.SIGKILL)  # committed; never relayed by this process

if step == "publish-then-die":
    def die(self, conn, ids):
        os.kill(os.getpid(), signal.SIGKILL)  # published; the rows are never deleted

    Outbox._delete = die

    async def relay():
        async with app:
            await outbox.relay_once(lambda: sqlite3.connect(app_db))

    asyncio.run(relay())
"""


class OrderPlaced(msgspec.Struct):
    order_id: int


def _child(tmp_path: Path, url: str, app_db: Path, step: str) -> int:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.run(
        [sys.executable, str(script), url, str(app_db), step],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    return proc.returncode


@pytest.mark.parametrize("kind", ["sqlite", server_param("postgres")])
async def test_an_event_survives_kills_before_and_during_the_relay(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = shared_store_url(request, kind, tmp_path)
    app_db = tmp_path / "app.db"
    with closing(sqlite3.connect(app_db)) as conn, conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app = Conveyor(url, log_level="WARNING")
    handled: list[tuple[int, str]] = []

    @app.events.subscribe(OrderPlaced, group="audit")
    async def on_placed(event: OrderPlaced, meta: EventMeta) -> None:
        handled.append((event.order_id, meta.event_id))

    outbox = app.events.outbox()
    with closing(sqlite3.connect(app_db)) as conn, conn:
        outbox.create_table(conn)
    async with app:
        await app.events.declare()  # the children route to this group through the store

        assert _child(tmp_path, url, app_db, "commit-then-die") == -9
        assert _rows(app_db) == 1  # the commit survived the kill

        assert _child(tmp_path, url, app_db, "publish-then-die") == -9
        assert _rows(app_db) == 1  # published, never deleted

        assert await outbox.relay_once(lambda: sqlite3.connect(app_db)) == 1
        assert _rows(app_db) == 0
        await app.work(burst=True)
    assert handled == [(1, "order-1")]


def _rows(app_db: Path) -> int:
    with closing(sqlite3.connect(app_db)) as conn, conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM conveyor_outbox").fetchone()
    return int(count)
