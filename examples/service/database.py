"""The service's own database: SQLAlchemy 2.0 async engines, sessions and audit fields.

    async with database.writing() as session:     # one transaction: commit, or roll back
        session.add(order)
    async with database.reading() as session:     # a consistent snapshot, no write lock
        ...

SQLite by default (``sqlite+aiosqlite``), PostgreSQL by URL. On SQLite the
file is in WAL mode, so readers never wait on the writer; a writing session
starts with ``BEGIN IMMEDIATE``, so it takes the write lock before its first
read and waits for it (busy timeout) instead of failing later when a read
snapshot cannot be upgraded. The outbox relay and the audit handler are
conveyor's, which speak sync SQLAlchemy: ``sync_engine`` is the same database
through the sync driver.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Integer, String, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from conveyor import CheckResult, Status
from examples.billing.ledger import use_wal

SCHEMA_VERSION = 1
"""The version of the row layout written by this code; rows keep the one they were
written with, so a migration can find the rows it still has to rewrite."""
IMMEDIATE = "sqlite_begin_immediate"
BUSY_TIMEOUT_SECONDS = 30

acting_as: contextvars.ContextVar[str] = contextvars.ContextVar("acting_as", default="system")
"""Who is writing (``account:<id>`` during a request, ``system`` in schedules): the
value of the audit fields ``created_by`` / ``updated_by``."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite gives datetimes back naive; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its offset."""
    return None if moment is None else aware(moment).isoformat()


class Base(DeclarativeBase):
    """Every table of the service."""


class Audited:
    """Audit fields and the schema version, filled in by the session (``_stamp``)."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now_utc, onupdate=now_utc
    )
    created_by: Mapped[str] = mapped_column(String(80), default="system")
    updated_by: Mapped[str] = mapped_column(String(80), default="system")
    schema_version: Mapped[int] = mapped_column(Integer, default=SCHEMA_VERSION)


@event.listens_for(Session, "before_flush")
def _stamp(session: Session, _context: Any, _instances: Any) -> None:
    actor = acting_as.get()
    for row in session.new:
        if isinstance(row, Audited):
            row.created_by = row.updated_by = actor
            row.schema_version = SCHEMA_VERSION
    for row in session.dirty:
        if isinstance(row, Audited) and session.is_modified(row):
            row.updated_by = actor


class Database:
    """The async engine, the sync one for conveyor's outbox and audit, and sessions."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = _create_async_engine(self.url, **self._engine_options())
        self.sync_engine: Engine = create_engine(self._sync_url(), **self._engine_options())
        if self.is_sqlite:
            _sqlite_pragmas(self.engine.sync_engine, own_transactions=True)
            _sqlite_pragmas(self.sync_engine, own_transactions=False)
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{IMMEDIATE: True}), expire_on_commit=False
        )

    def _engine_options(self) -> dict[str, Any]:
        if self.is_sqlite:
            return {"connect_args": {"timeout": BUSY_TIMEOUT_SECONDS}}
        return {"pool_pre_ping": True}

    def _sync_url(self) -> Any:
        driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}
        return self.url.set(drivername=driver[self.url.get_backend_name()])

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for queries: one snapshot, no write lock."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back if it
        raises (nothing of it is written)."""
        async with self._writer() as session, session.begin():
            yield session

    async def create_tables(self, *more: Callable[[Connection], None]) -> None:
        """``create_all`` for the service's tables, then ``more`` (conveyor's outbox and
        audit tables) on the sync engine."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        if more:
            with self.sync_engine.begin() as sync_conn:
                for create in more:
                    create(sync_conn)

    async def check_health(self) -> CheckResult:
        """The health check ``database``: one round trip."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        elapsed_ms = (time.perf_counter() - started) * 1000
        return CheckResult(Status.OK, f"{self.url.get_backend_name()}, {elapsed_ms:.1f} ms")

    async def dispose(self) -> None:
        await self.engine.dispose()
        self.sync_engine.dispose()


def _sqlite_pragmas(engine: Engine, *, own_transactions: bool) -> None:
    """WAL, foreign keys and the busy timeout on every connection; with
    ``own_transactions``, BEGIN (IMMEDIATE for writing sessions) is ours to send
    (SQLAlchemy's recipe for the pysqlite/aiosqlite drivers)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if own_transactions:
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        use_wal(cursor, BUSY_TIMEOUT_SECONDS)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    if own_transactions:

        @event.listens_for(engine, "begin")
        def on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def upsert(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] = (),
) -> None:
    """INSERT ``rows``; a row whose ``keys`` exist already sets ``update`` (or, without
    ``update``, is left as it is). SQLite and PostgreSQL share the syntax."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(list(rows))
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={column: statement.excluded[column] for column in update},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    await session.execute(statement)
