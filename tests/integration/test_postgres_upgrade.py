"""A PostgreSQL store written by the previous schema version is upgraded on open, data kept.

``tests/fixtures/postgres_schema_v1.sql`` is a dump of a store at schema version 1
(tables, the functions of that version, rows). Opening it with this conveyor
applies the newer migrations and replaces the functions; every job, its logs
and events, the schedule, the limits, the event group and the cache entry are
still there and the jobs still run. Several processes opening the old store at
once upgrade it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conveyor import Cache, Conveyor, JobState
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "postgres_schema_v1.sql"
SCHEMA = "conveyor_v1"


@pytest.fixture
def v1_url(postgres_server: PostgresServer) -> Iterator[str]:
    postgres_server.drop_schema(SCHEMA)
    with psycopg.connect(postgres_server.store_dsn, autocommit=True) as conn:
        conn.execute(FIXTURE.read_text())  # type: ignore[arg-type]
    yield postgres_server.store_url(SCHEMA)
    postgres_server.drop_schema(SCHEMA)


def _version(postgres_server: PostgresServer) -> int:
    with psycopg.connect(postgres_server.store_dsn) as conn:
        row = conn.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchone()
    assert row is not None
    return int(row[0])


def test_the_fixture_is_one_version_behind(postgres_server: PostgresServer, v1_url: str) -> None:
    assert SCHEMA_VERSION == 2 == len(MIGRATIONS)
    assert _version(postgres_server) == 1


async def test_opening_a_version_1_store_upgrades_it_and_keeps_its_data(
    postgres_server: PostgresServer, v1_url: str
) -> None:
    app = Conveyor(v1_url, log_level="WARNING")

    @app.task(name="billing.charge", queue="billing", retries=2)
    async def charge(amount: int) -> int:
        return amount * 2

    async with app:
        assert _version(postgres_server) == SCHEMA_VERSION
        done = await app.jobs.get("done-1")
        assert (done.status, done.result) == (JobState.COMPLETED, 42)
        assert [line.line for line in await done.logs()] == ["charged 21"]
        failed = await app.jobs.get("failed-1")
        assert failed.status is JobState.FAILED
        assert failed.error is not None and failed.error.message == "negative"
        assert (await app.jobs.get("later-1")).status is JobState.SCHEDULED
        assert [s.name for s in await app.schedules.list()] == ["billing.report"]
        assert (await app.jobs.queue_limits("billing")).concurrency == 3
        assert "audit" in await app.events.groups()
        counts = await app.jobs.counts()
        assert counts["events.audit"][JobState.WAITING] == 1  # a delivery still to make

        waiting = await app.jobs.get("waiting-1")
        await app.work(burst=True, queues=["billing"])
        await waiting.refresh()
        assert (waiting.status, waiting.result) == (JobState.COMPLETED, 10)
        assert await app.jobs.retry("failed-1")

    cache = Cache(v1_url)
    try:
        assert await cache.get("greeting") == {"hello": "world"}
    finally:
        await cache.close()


async def test_processes_opening_an_old_store_at_once_upgrade_it_once(
    postgres_server: PostgresServer, v1_url: str
) -> None:
    connections = [PostgresConnection(v1_url, timeout=30) for _ in range(4)]
    try:
        for db in connections:
            await db.open(max_size=1)
        await asyncio.gather(*(migrate(db, create=True, now=0) for db in connections))
    finally:
        for db in connections:
            await db.close()
    assert _version(postgres_server) == SCHEMA_VERSION
    async with Conveyor(v1_url, log_level="WARNING") as app:
        assert (await app.jobs.get("waiting-1")).status is JobState.WAITING


async def test_an_admin_command_never_creates_a_store(postgres_server: PostgresServer) -> None:
    from conveyor import NotFoundError
    from conveyor.config import load_settings
    from conveyor.stores.registry import make_backend

    url = postgres_server.store_url("never_made")
    backend = make_backend(load_settings(url, {"log_level": "WARNING"}))
    with pytest.raises(NotFoundError, match="no conveyor store in schema 'never_made'"):
        await backend.open(create=False)
    with psycopg.connect(postgres_server.store_dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'never_made'").fetchone()
    assert found is None
