"""The PostgreSQL store's schema: versions, migrations applied on open, and its functions.

``sql/migrations/NNNN_*.sql`` are the schema's versions, applied in order in
one transaction with the functions, and never edited once released (a store made by an
older conveyor is upgraded by the files it has not seen). ``sql/functions/*.sql``
are the store's PL/pgSQL functions (its transitions, as the Lua scripts are on
Redis) and the triggers that call them: they hold no data, so they are dropped
and created again, whole, whenever their text changes.

``{schema}.schema_version`` records both. Opening a store reads that row
(one query) and is done when it is current; otherwise it takes an advisory
lock (several processes may open a new or older store at once: one upgrades
it, the others wait and find it current) and applies what is missing.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from asyncpg import exceptions as pg_errors

from conveyor.errors import NotFoundError, StoreUnavailableError
from conveyor.masking import mask_url
from conveyor.stores.postgres.connection import Conn, PostgresConnection
from conveyor.stores.search import error_keys, joined_keys

_SQL = resources.files("conveyor.stores.postgres") / "sql"
MIGRATIONS: tuple[str, ...] = tuple(
    sorted(p.name for p in (_SQL / "migrations").iterdir() if p.name.endswith(".sql"))
)
SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this conveyor writes (and the newest it can read)."""
FUNCTION_FILES = (
    "counts.sql",
    "report.sql",
    "enqueue.sql",
    "claim.sql",
    "exchange.sql",
    "leases.sql",
    "cache.sql",
    "ratelimit.sql",
)
_BACKFILL_BATCH = 1_000
LOCK_CLASS = 0x436F6E76
"""The first key of conveyor's advisory locks ('Conv'); the second is the schema's hash."""

_VERSION_TABLE = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     integer NOT NULL,
    functions   text    NOT NULL,
    migrated_at bigint  NOT NULL
);
"""
_DROP_FUNCTIONS = """
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = '{schema}'::regnamespace LOOP
        EXECUTE 'DROP FUNCTION ' || f || ' CASCADE';  -- with the triggers that call it
    END LOOP;
END $$;
"""


def _read(*parts: str) -> str:
    return _SQL.joinpath(*parts).read_text()


def functions_source() -> str:
    return "\n".join(_read("functions", name) for name in FUNCTION_FILES)


FUNCTIONS_DIGEST = hashlib.sha256(functions_source().encode()).hexdigest()[:16]


async def migrate(db: PostgresConnection, *, create: bool, now: int) -> None:
    """Bring the backend's schema to :data:`SCHEMA_VERSION` and its functions up to date.

    With ``create=False`` a schema that does not exist is not made: ``NotFoundError``.
    """

    async def step(conn: Conn) -> None:
        found = await _current(conn, db)
        if found == (SCHEMA_VERSION, FUNCTIONS_DIGEST):
            return
        if found is None and not create:
            raise NotFoundError(f"no conveyor store in schema {db.schema!r} of {mask_url(db.url)}")
        # The session lock lives on a connection of its own, closed afterwards, so no
        # pooled connection can ever keep it.
        own = await db.connect()
        try:
            await db.call(
                lambda: own.execute(
                    "SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, db.schema
                )
            )
            await db.call(lambda: _upgrade(own, db, now))
        finally:
            await own.close()

    await db.run(step)


async def _current(conn: Conn, db: PostgresConnection) -> tuple[int, str] | None:
    """The stored (version, functions digest), or None when there is no store yet."""
    try:
        row = await conn.fetchrow(db.sql("SELECT version, functions FROM {schema}.schema_version"))
    except (pg_errors.UndefinedTableError, pg_errors.InvalidSchemaNameError):
        return None
    return None if row is None else (row["version"], row["functions"])


async def _upgrade(conn: Conn, db: PostgresConnection, now: int) -> None:
    """Apply what is missing (under the advisory lock, so one process does it)."""
    await conn.execute(db.sql(_VERSION_TABLE))
    version, digest = await _current(conn, db) or (0, "")
    if version > SCHEMA_VERSION:
        raise StoreUnavailableError(
            f"the store in schema {db.schema!r} is at schema version {version}, newer than"
            f" this conveyor's {SCHEMA_VERSION}: upgrade conveyor"
        )
    if (version, digest) == (SCHEMA_VERSION, FUNCTIONS_DIGEST):
        return  # another process upgraded it while this one waited for the lock
    # One transaction: the tables and the functions (and triggers) that write them change
    # together, so no statement ever runs on new tables without the triggers that count.
    async with conn.transaction():
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await conn.execute(db.sql(_read("migrations", MIGRATIONS[number - 1])))
        await conn.execute(db.sql(_DROP_FUNCTIONS))
        await conn.execute(db.sql(functions_source()))
        if 0 < version < 4:
            await _index_old_failures(conn, db)
        await _record(conn, db, SCHEMA_VERSION, FUNCTIONS_DIGEST, now)


async def _index_old_failures(conn: Conn, db: PostgresConnection) -> None:
    """Schema v4: put the jobs that failed before the error index existed (v3) into it.

    Their errors are tokenized here, by the one tokenizer (``stores/search.py``); one read
    of the failed jobs not marked keyed (every job older than v3 is unmarked), in batches.
    """
    batch: list[tuple[str, str]] = []
    query = db.sql(
        "SELECT id, error FROM {schema}.jobs WHERE state = 'failed' AND NOT keyed"
        " AND error IS NOT NULL"
    )
    async for row in conn.cursor(query, prefetch=_BACKFILL_BATCH):
        batch.append((row["id"], joined_keys(error_keys(row["error"]))))
        if len(batch) == _BACKFILL_BATCH:
            await _index(conn, db, batch)
            batch = []
    await _index(conn, db, batch)


async def _index(conn: Conn, db: PostgresConnection, keys: list[tuple[str, str]]) -> None:
    if keys:
        await conn.execute(
            db.sql("SELECT {schema}.index_keys($1::text[], $2::text[])"),
            [job_id for job_id, _ in keys],
            [joined for _, joined in keys],
        )


async def _record(conn: Conn, db: PostgresConnection, version: int, digest: str, now: int) -> None:
    await conn.execute(
        db.sql(
            "INSERT INTO {schema}.schema_version (version, functions, migrated_at)"
            " VALUES ($1, $2, $3) ON CONFLICT (singleton) DO UPDATE SET"
            " version = excluded.version, functions = excluded.functions,"
            " migrated_at = excluded.migrated_at"
        ),
        version,
        digest,
        now,
    )


async def ensure_index(conn: Conn, db: PostgresConnection, ddl: str) -> None:
    """Create an index the schema makes only when a feature needs it (in the caller's
    transaction; the advisory lock keeps two processes from racing on the catalog)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, db.schema)
    await conn.execute(db.sql(ddl))
