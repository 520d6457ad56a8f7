"""Plans of the PostgreSQL store's hot statements that must not grow with the data.

Timing belongs in bench/; what is pinned here is which index a statement reads, read
from the server's own EXPLAIN on a store shaped like a large deployment's. A statement
inside a function (exchange.sql, leases.sql) is out of EXPLAIN's reach: its plan is read
from auto_explain, which the server sends to the calling session as a notice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import asyncpg
import psycopg
import pytest

from conveyor import Conveyor
from conveyor.stores.postgres.claims import _EXCHANGE
from conveyor.stores.postgres.leases import _PROGRESS, _RELEASE, _RENEW
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

SCHEMA = "conveyor_plans"
EXCHANGE_SQL = resources.files("conveyor.stores.postgres") / "sql" / "functions" / "exchange.sql"


@pytest.fixture
def store_url(postgres_server: PostgresServer) -> Iterator[str]:
    postgres_server.drop_schema(SCHEMA)
    yield postgres_server.store_url(SCHEMA)
    postgres_server.drop_schema(SCHEMA)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans_in(plan: dict[str, Any], table: str) -> list[tuple[str, Any]]:
    """(node type, index) of each scan of ``table`` in ``plan``."""
    return [
        (node["Node Type"], node.get("Index Name"))
        for node in _nodes(plan)
        if node.get("Relation Name") == table and node["Node Type"] != "ModifyTable"
    ]


def _scans(conn: psycopg.Connection[Any], statement: str, table: str) -> list[tuple[str, Any]]:
    """(node type, index) of each scan of ``table`` in the plan of ``statement``."""
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}").fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return _scans_in(plan[0]["Plan"], table)


async def _late_drain(store_url: str, dsn: str) -> list[str]:
    """A store with the statistics of a late drain: 10 active jobs (token 't') among
    5,000, the others finished; the ids of the active ones.

    With the state compared to a constant, the planner then reads jobs_leases, whose dead
    entries (one per job finished since the last vacuum) it cannot see (exchange.sql,
    note 1)."""
    app = Conveyor(store_url, log_level="WARNING")

    @app.task(name="noop")
    async def noop(n: int) -> None:
        return None

    async with app:
        await app.enqueue_many([noop.call(n) for n in range(5_000)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        held = f"SELECT id FROM {SCHEMA}.jobs ORDER BY id LIMIT 10"
        conn.execute(
            f"UPDATE {SCHEMA}.jobs SET state = 'active', token = 't', lease_until = 1"
            f" WHERE id IN ({held})"
        )
        conn.execute(
            f"UPDATE {SCHEMA}.jobs SET state = 'completed', finished_at = 1 WHERE state = 'waiting'"
        )
        conn.execute(f"ANALYZE {SCHEMA}.jobs")
        return [job_id for (job_id,) in conn.execute(held)]


async def test_the_paused_queue_guard_reads_the_paused_queues_only(
    postgres_server: PostgresServer, store_url: str
) -> None:
    # The guard as exchange.sql writes it, so that the test follows the statement.
    guard_sql = r"IF EXISTS \((SELECT 1 FROM \{schema\}\.queues WHERE paused)\)"
    found = re.search(guard_sql, EXCHANGE_SQL.read_text())
    assert found is not None, "exchange.sql no longer guards its paused-queue lookup"
    guard = found.group(1).format(schema=SCHEMA)

    async with Conveyor(store_url, log_level="WARNING") as app:
        await app.jobs.pause("billing")
    with psycopg.connect(postgres_server.store_dsn, autocommit=True) as conn:
        # A queue per tenant: every exchange asks its question of a table of 10,000 rows.
        conn.execute(
            f"INSERT INTO {SCHEMA}.queues (name)"
            " SELECT 'tenant-' || i FROM generate_series(1, 10000) AS i"
        )
        conn.execute(f"ANALYZE {SCHEMA}.queues")
        scans = _scans(conn, f"SELECT EXISTS ({guard})", "queues")
        assert conn.execute(f"SELECT EXISTS ({guard})").fetchone() == (True,)
    assert scans == [("Index Only Scan", "queues_paused")], scans


async def test_a_lease_renewal_finds_held_jobs_by_primary_key(
    postgres_server: PostgresServer, store_url: str
) -> None:
    held = await _late_drain(store_url, postgres_server.store_dsn)
    with psycopg.connect(postgres_server.store_dsn, autocommit=True) as conn:
        ids = ", ".join(f"'{job_id}'" for job_id in held)
        conn.execute(f"PREPARE renew (text[], text[], bigint) AS {_RENEW.format(schema=SCHEMA)}")
        scans = _scans(
            conn, f"EXECUTE renew(ARRAY[{ids}], array_fill('t'::text, ARRAY[10]), 5)", "jobs"
        )
    assert scans == [("Index Scan", "jobs_pkey")], scans


def _held_calls(ids: list[str]) -> dict[str, tuple[str, tuple[Any, ...], str]]:
    """The store's own statements that find held jobs inside a function, each with
    arguments for the 10 jobs ``_late_drain`` left active, and the condition every one
    of them meets once it found them."""
    n, tokens = len(ids), ["t"] * len(ids)
    finish = (ids, tokens, ["completed"] * n, [5] * n, [None] * n, [None] * n, [1] * n)
    return {
        # Finish every held job (exchange.sql), claiming nothing.
        "finish": (
            _EXCHANGE,
            (*finish, [None] * n, [None] * n, [""] * n, [], [], [], [], 0, "w", 1_000, "x", 5),
            "state = 'completed' AND token IS NULL",
        ),
        "release": (
            _RELEASE,
            (ids, tokens, 5, 1_000),
            "state IN ('waiting', 'scheduled') AND token IS NULL",
        ),
        "progress": (
            _PROGRESS,
            (ids, tokens, [b"1"] * n, [], [], [], 10, 5),
            "state = 'active' AND progress = '1'",
        ),
    }


@pytest.mark.parametrize("step", ["finish", "release", "progress"])
async def test_a_step_inside_a_function_finds_held_jobs_by_primary_key(
    postgres_server: PostgresServer, store_url: str, step: str
) -> None:
    held = await _late_drain(store_url, postgres_server.store_dsn)
    statement, args, found = _held_calls(held)[step]
    notices: list[str] = []
    conn = await asyncpg.connect(postgres_server.store_dsn)
    try:
        conn.add_log_listener(lambda _conn, message: notices.append(message.message))
        await conn.execute("LOAD 'auto_explain'")  # the test server's user is a superuser
        await conn.execute(
            "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
            " SET auto_explain.log_format = json; SET auto_explain.log_level = notice"
        )
        await conn.fetch(statement.format(schema=SCHEMA), *args)
        done = await conn.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.jobs WHERE id = ANY ($1::text[]) AND {found}", held
        )
    finally:
        await conn.close()
    assert done == len(held), f"the {step} step did not find the held jobs"
    plans = [json.loads(m[m.index("{") :]) for m in notices if '"Plan"' in m]
    # Of the plans auto_explain sent (the outer call among them), those of statements that
    # write jobs: the function's step that finds the held jobs.
    writes = [
        _scans_in(p["Plan"], "jobs")
        for p in plans
        if any(
            node["Node Type"] == "ModifyTable" and node.get("Relation Name") == "jobs"
            for node in _nodes(p["Plan"])
        )
    ]
    assert writes == [[("Index Scan", "jobs_pkey")]], writes
