"""A PostgreSQL store written by an older schema version is upgraded on open, data kept.

``tests/fixtures/postgres_schema_v1.sql`` and ``postgres_schema_v2.sql`` are dumps
of a store at schema versions 1 and 2 (tables, the functions of that version,
rows). Opening either with this conveyor applies the newer migrations and
replaces the functions; every job, its logs and events, the schedule, the
limits, the event group and the cache entry are still there, counted, listed
and searchable, and the jobs still run. Several processes opening an old store
at once upgrade it once.

The dumps hold absolute times (a finished job expires a day after it ended, a delayed
one is due an hour after it was made), so the app reads a clock that starts just after
the dump was written (``WrittenClock``): the test does not change when the fixtures age.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conveyor import Cache, Conveyor, JobState
from conveyor.clock import SystemClock
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.conformance.conftest import assert_counts_match_listings
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OLD_VERSIONS = [1, 2]


@pytest.fixture(params=OLD_VERSIONS, ids=[f"v{v}" for v in OLD_VERSIONS])
def old_version(request: pytest.FixtureRequest) -> int:
    version: int = request.param
    return version


@pytest.fixture
def old_url(postgres_server: PostgresServer, old_version: int) -> Iterator[str]:
    schema = f"conveyor_v{old_version}"
    postgres_server.drop_schema(schema)
    dump = FIXTURES / f"postgres_schema_v{old_version}.sql"
    with psycopg.connect(postgres_server.store_dsn, autocommit=True) as conn:
        conn.execute(dump.read_text())
    yield postgres_server.store_url(schema)
    postgres_server.drop_schema(schema)


class WrittenClock(SystemClock):
    """The system clock moved back to ``start_ms``, from where it runs on."""

    def __init__(self, start_ms: int) -> None:
        self._offset = start_ms - super().now_ms()

    def now_ms(self) -> int:
        return super().now_ms() + self._offset


@pytest.fixture
def written_clock(postgres_server: PostgresServer, old_url: str, old_version: int) -> WrittenClock:
    """A clock that starts a second after the newest job of the dump was made."""
    with psycopg.connect(postgres_server.store_dsn) as conn:
        row = conn.execute(f"SELECT max(created_at) FROM conveyor_v{old_version}.jobs").fetchone()
    assert row is not None
    return WrittenClock(int(row[0]) + 1_000)


def _version(postgres_server: PostgresServer, old_version: int) -> int:
    with psycopg.connect(postgres_server.store_dsn) as conn:
        row = conn.execute(f"SELECT version FROM conveyor_v{old_version}.schema_version").fetchone()
    assert row is not None
    return int(row[0])


def test_the_fixtures_are_older_versions(
    postgres_server: PostgresServer, old_url: str, old_version: int
) -> None:
    assert SCHEMA_VERSION == 6 == len(MIGRATIONS)
    assert _version(postgres_server, old_version) == old_version < SCHEMA_VERSION


async def test_opening_an_older_store_upgrades_it_and_keeps_its_data(
    postgres_server: PostgresServer, old_url: str, old_version: int, written_clock: WrittenClock
) -> None:
    app = Conveyor(old_url, log_level="WARNING", clock=written_clock)

    @app.task(name="billing.charge", queue="billing", retries=2)
    async def charge(amount: int) -> int:
        return amount * 2

    async with app:
        assert _version(postgres_server, old_version) == SCHEMA_VERSION
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
        assert counts["billing"][JobState.FAILED] == 1
        await assert_counts_match_listings(app.store)  # counted once, by the migration
        page = await app.jobs.list_page(JobState.SCHEDULED, "billing")
        assert [job.id for job in page.jobs] == ["later-1"]
        assert [job.id for job in (await app.jobs.search(id_prefix="fail")).jobs] == ["failed-1"]
        # Failed before the error index existed (schema v3): indexed by the upgrade all the same.
        by_type = await app.jobs.search(error_type="ValueError")
        assert [job.id for job in by_type.jobs] == ["failed-1"]
        by_word = await app.jobs.search(error_word="negative", queue="billing")
        assert [job.id for job in by_word.jobs] == ["failed-1"]

        waiting = await app.jobs.get("waiting-1")
        await app.work(burst=True, queues=["billing"])
        await waiting.refresh()
        assert (waiting.status, waiting.result) == (JobState.COMPLETED, 10)
        assert await app.jobs.retry("failed-1")
        # Since schema version 5 the jobs trigger deletes a job's log lines (no foreign key).
        await app.jobs.remove("done-1")
        again = await charge.options(job_id="done-1").enqueue(1)
        assert await again.logs() == []
        await assert_counts_match_listings(app.store)

    cache = Cache(old_url)
    try:
        assert await cache.get("greeting") == {"hello": "world"}
    finally:
        await cache.close()


async def test_processes_opening_an_old_store_at_once_upgrade_it_once(
    postgres_server: PostgresServer, old_url: str, old_version: int
) -> None:
    connections = [PostgresConnection(old_url, timeout=30) for _ in range(4)]
    try:
        for db in connections:
            await db.open(max_size=1)
        await asyncio.gather(*(migrate(db, create=True, now=0) for db in connections))
    finally:
        for db in connections:
            await db.close()
    assert _version(postgres_server, old_version) == SCHEMA_VERSION
    async with Conveyor(old_url, log_level="WARNING") as app:
        assert (await app.jobs.get("waiting-1")).status is JobState.WAITING


async def test_an_admin_command_never_creates_a_store(postgres_server: PostgresServer) -> None:
    from conveyor import NotFoundError
    from conveyor.config import load_settings
    from conveyor.stores.registry import make_backend

    url = postgres_server.store_url("never_made")
    backend = make_backend(url, load_settings(url, {"log_level": "WARNING"}))
    with pytest.raises(NotFoundError, match="no conveyor store in schema 'never_made'"):
        await backend.open(create=False)
    with psycopg.connect(postgres_server.store_dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'never_made'").fetchone()
    assert found is None
