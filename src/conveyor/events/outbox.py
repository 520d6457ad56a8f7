"""The transactional outbox: publish inside the application's own SQL transaction.

``outbox.add(conn, event)`` inserts the event's envelope into an outbox
table on the connection the application is already writing its own rows
with, so the event exists if and only if that transaction commits. A relay
(``outbox.relay(database)``) moves committed rows to the bus in batches:
publish first, delete after. A relay that dies between the two publishes
the same rows again on its next run; their deliveries' ids are
``<event_id>@<group>``, so the second publish adds nothing while the first
deliveries are kept (and ``idempotent=True`` groups skip them after that).
On PostgreSQL, concurrent relays skip each other's rows (``FOR UPDATE SKIP
LOCKED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec

from conveyor import serialization
from conveyor.errors import BadInputError
from conveyor.events.envelope import Envelope, EventMeta
from conveyor.events.sql import Sql
from conveyor.observability.logging import get_logger

if TYPE_CHECKING:
    from conveyor.events.publisher import Publisher

log = get_logger("conveyor.events.outbox")

_TABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}")
_envelopes = msgspec.json.Decoder(Envelope)

DDL = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " event_id TEXT NOT NULL UNIQUE, envelope TEXT NOT NULL, created_at INTEGER NOT NULL)"
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS {t} (id BIGSERIAL PRIMARY KEY,"
        " event_id TEXT NOT NULL UNIQUE, envelope TEXT NOT NULL, created_at BIGINT NOT NULL)"
    ),
}


def check_table(table: str) -> str:
    if not isinstance(table, str) or not _TABLE.fullmatch(table):
        raise BadInputError(f"not a plain SQL table name: {table!r}")
    return table


class Outbox:
    """``app.events.outbox(table=...)``: add events in a transaction, relay them to the bus."""

    def __init__(self, publisher: Publisher, table: str, batch: int = 500) -> None:
        self._publisher = publisher
        self.table = check_table(table)
        self.batch = batch
        self._limit = publisher.settings.max_payload_bytes

    # -- the application's side ------------------------------------------------

    def create_table(self, conn: Any) -> None:
        """Create the outbox table if missing (a sync connection or session)."""
        sql = Sql(conn)
        sql.execute(DDL[sql.dialect].format(t=self.table))

    def add(self, conn: Any, event: object, **options: Any) -> EventMeta:
        """Add ``event`` to the outbox in ``conn``'s current transaction; commit is yours.

        ``options``: ``event_id``, ``source``, ``trace_id``, ``request_id``.
        """
        statement, params, meta = self._insert(event, options)
        Sql(conn).execute(statement, params)
        return meta

    async def add_async(self, conn: Any, event: object, **options: Any) -> EventMeta:
        """``add`` on a SQLAlchemy AsyncConnection or AsyncSession."""
        statement, params, meta = self._insert(event, options)
        await Sql(conn).execute_async(statement, params)
        return meta

    def _insert(
        self, event: object, options: dict[str, Any]
    ) -> tuple[str, tuple[Any, ...], EventMeta]:
        envelope = self._publisher.envelope(event, **options)
        encoded = serialization.dumps(envelope, what="event", limit=self._limit).decode()
        statement = f"INSERT INTO {self.table} (event_id, envelope, created_at) VALUES (?, ?, ?)"
        return (
            statement,
            (envelope.event_id, encoded, self._publisher.clock.now_ms()),
            envelope.meta(),
        )

    # -- the relay -------------------------------------------------------------

    async def relay_once(self, database: Any) -> int:
        """Move one batch of committed rows to the bus; returns how many were moved.

        ``database``: a SQLAlchemy ``Engine`` or a function returning a new
        DB-API connection (``lambda: sqlite3.connect(path)``).
        """
        with ThreadPoolExecutor(1, thread_name_prefix="conveyor-outbox") as thread:
            return await self._relay_batch(database, thread)

    async def relay(
        self, database: Any, *, interval: float = 0.5, stop: asyncio.Event | None = None
    ) -> None:
        """Relay until ``stop`` is set: a full batch goes on at once, else waits ``interval``."""
        stop = stop or asyncio.Event()
        failures = 0
        with ThreadPoolExecutor(1, thread_name_prefix="conveyor-outbox") as thread:
            while not stop.is_set():
                try:
                    moved = await self._relay_batch(database, thread)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.warning(
                        "outbox relay failed; retrying",
                        table=self.table,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    moved = 0
                if moved < self.batch:
                    pause = min(interval * 2**failures, 30.0) if failures else interval
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pause):
                            await stop.wait()

    async def _relay_batch(self, database: Any, thread: ThreadPoolExecutor) -> int:
        loop = asyncio.get_running_loop()

        def run(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
            return loop.run_in_executor(thread, fn, *args)

        conn = await run(connect, database)
        try:
            rows: list[tuple[Any, ...]] = await run(self._take, conn)
            if rows:
                envelopes = [_envelopes.decode(_text(envelope)) for _id, envelope in rows]
                await self._publisher.publish_envelopes(envelopes, self._publisher.clock.now_ms())
                await run(self._delete, conn, [row[0] for row in rows])
            else:
                await run(end, conn)
            return len(rows)
        except BaseException:
            await run(_rollback, conn)
            raise
        finally:
            await run(close, conn)

    def _take(self, conn: Any) -> list[tuple[Any, ...]]:
        sql = Sql(conn)
        lock = " FOR UPDATE SKIP LOCKED" if sql.dialect == "postgresql" else ""
        return sql.execute(
            f"SELECT id, envelope FROM {self.table} ORDER BY id LIMIT ?{lock}", (self.batch,)
        )

    def _delete(self, conn: Any, ids: Sequence[int]) -> None:
        marks = ", ".join("?" * len(ids))
        Sql(conn).execute(f"DELETE FROM {self.table} WHERE id IN ({marks})", ids)
        conn.commit()


def _text(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def connect(database: Any) -> Any:
    """A new connection: ``engine.connect()`` or ``database()``."""
    if hasattr(database, "connect") and type(database).__module__.startswith("sqlalchemy"):
        return database.connect()
    if callable(database):
        return database()
    raise BadInputError("database must be a SQLAlchemy Engine or a function returning a connection")


def end(conn: Any) -> None:
    conn.commit()


def _rollback(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.rollback()


def close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()
