"""The transactional outbox and the audit handler, on every job store and app database.

The application's database is SQLite (through ``sqlite3`` and through
SQLAlchemy) or a real PostgreSQL server (through ``psycopg`` and SQLAlchemy).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
import sqlalchemy
from sqlalchemy.orm import Session

from conveyor import BadInputError, EventMeta
from conveyor.events.outbox import Outbox
from tests.conftest import AppFactory
from tests.postgres_server import PostgresServer


class OrderPlaced(msgspec.Struct, frozen=True):
    order_id: int


class AppDb:
    """The application's own database: transactions, and what the relay connects with."""

    def __init__(
        self,
        begin: Callable[[], contextlib.AbstractContextManager[Any]],
        database: Any,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.begin = begin
        self.database = database
        self.close = close

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.begin() as conn:
            if isinstance(conn, sqlalchemy.Connection | Session):
                return [tuple(r) for r in conn.execute(sqlalchemy.text(sql))]
            cursor = conn.cursor()
            cursor.execute(sql)
            return [tuple(r) for r in cursor.fetchall()]


def _sqlite3_db(path: Path) -> AppDb:
    @contextlib.contextmanager
    def begin() -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(path)
        try:
            with conn:  # commits, or rolls back on an exception
                yield conn
        finally:
            conn.close()

    return AppDb(begin, lambda: sqlite3.connect(path))


def _psycopg_db(dsn: str) -> AppDb:
    @contextlib.contextmanager
    def begin() -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(dsn) as conn:  # commits, or rolls back on an exception
            yield conn

    return AppDb(begin, lambda: psycopg.connect(dsn))


def _engine_db(engine: sqlalchemy.Engine, *, session: bool) -> AppDb:
    @contextlib.contextmanager
    def begin() -> Iterator[Any]:
        if session:
            with Session(engine) as s, s.begin():
                yield s
        else:
            with engine.begin() as conn:
                yield conn

    return AppDb(begin, engine, engine.dispose)


@pytest.fixture(params=["sqlite3", "sqlalchemy-sqlite", "psycopg", "sqlalchemy-postgres"])
def app_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppDb]:
    kind: str = request.param
    if kind == "sqlite3":
        db = _sqlite3_db(tmp_path / "app.db")
    elif kind == "sqlalchemy-sqlite":
        db = _engine_db(sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}"), session=True)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        server.reset()
        if kind == "psycopg":
            db = _psycopg_db(server.dsn)
        else:
            db = _engine_db(sqlalchemy.create_engine(server.sqlalchemy_url), session=False)
    with db.begin() as conn:
        if isinstance(conn, sqlalchemy.Connection | Session):
            conn.execute(sqlalchemy.text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
        else:
            conn.cursor().execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    yield db
    db.close()


def _outbox_with_table(outbox: Outbox, db: AppDb) -> Outbox:
    with db.begin() as conn:
        outbox.create_table(conn)
    return outbox


def _insert_order(conn: Any, order_id: int) -> None:
    if isinstance(conn, sqlalchemy.Connection | Session):
        conn.execute(sqlalchemy.text(f"INSERT INTO orders (id) VALUES ({order_id})"))
    else:
        conn.cursor().execute(f"INSERT INTO orders (id) VALUES ({order_id})")


async def test_an_event_is_delivered_once_its_transaction_commits(
    make_app: AppFactory, app_db: AppDb
) -> None:
    app = make_app()
    handled: list[tuple[int, str]] = []

    @app.events.subscribe(OrderPlaced, group="audit")
    async def on_placed(event: OrderPlaced, meta: EventMeta) -> None:
        handled.append((event.order_id, meta.event_id))

    outbox = _outbox_with_table(app.events.outbox(), app_db)
    with app_db.begin() as conn:
        _insert_order(conn, 1)
        meta = outbox.add(conn, OrderPlaced(1), trace_id="t-1")
    assert handled == []
    assert await outbox.relay_once(app_db.database) == 1
    assert await outbox.relay_once(app_db.database) == 0
    await app.work(burst=True)
    assert handled == [(1, meta.event_id)]
    assert app_db.query("SELECT COUNT(*) FROM conveyor_outbox") == [(0,)]


async def test_a_rolled_back_transaction_publishes_nothing(
    make_app: AppFactory, app_db: AppDb
) -> None:
    app = make_app()

    @app.events.subscribe(OrderPlaced, group="audit")
    async def on_placed(event: OrderPlaced) -> None:
        raise AssertionError("must not run")

    outbox = _outbox_with_table(app.events.outbox(), app_db)

    def save_order() -> None:
        with app_db.begin() as conn:
            _insert_order(conn, 2)
            outbox.add(conn, OrderPlaced(2))
            raise RuntimeError("the order could not be saved")

    with pytest.raises(RuntimeError):
        save_order()
    assert app_db.query("SELECT COUNT(*) FROM orders") == [(0,)]
    assert await outbox.relay_once(app_db.database) == 0
    assert await app.jobs.counts() == {}


async def test_a_relay_that_dies_after_publishing_duplicates_nothing(
    make_app: AppFactory, app_db: AppDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    handled: list[int] = []

    @app.events.subscribe(OrderPlaced, group="audit")
    async def on_placed(event: OrderPlaced) -> None:
        handled.append(event.order_id)

    outbox = _outbox_with_table(app.events.outbox(batch=2), app_db)
    with app_db.begin() as conn:
        for n in range(3):
            outbox.add(conn, OrderPlaced(n))

    def crash(self: Outbox, conn: Any, ids: Any) -> None:
        raise ConnectionError("relay lost its database after publishing")

    with monkeypatch.context() as patch:
        patch.setattr(Outbox, "_delete", crash)
        with pytest.raises(ConnectionError):
            await outbox.relay_once(app_db.database)
    assert app_db.query("SELECT COUNT(*) FROM conveyor_outbox") == [(3,)]
    assert await outbox.relay_once(app_db.database) == 2
    assert await outbox.relay_once(app_db.database) == 1
    await app.work(burst=True)
    assert sorted(handled) == [0, 1, 2]


async def test_the_audit_handler_records_each_event_once(
    make_app: AppFactory, app_db: AppDb
) -> None:
    app = make_app()
    audit = app.events.audit(OrderPlaced, database=app_db.database, table="audit_log")
    with app_db.begin() as conn:
        audit.create_table(conn)
    await app.events.publish(OrderPlaced(5), event_id="evt-5", trace_id="t-5")
    await app.work(burst=True)
    await app.jobs.remove("evt-5@audit")  # the delivery is gone: the event arrives again
    await app.events.publish(OrderPlaced(5), event_id="evt-5", trace_id="t-5")
    await app.work(burst=True)
    rows = app_db.query("SELECT event_id, type, trace_id, data FROM audit_log")
    assert rows == [("evt-5", "OrderPlaced", "t-5", '{"order_id":5}')]


async def test_the_relay_loop_moves_rows_until_stopped(make_app: AppFactory, app_db: AppDb) -> None:
    app = make_app()
    handled: list[int] = []
    done = asyncio.Event()

    @app.events.subscribe(OrderPlaced, group="audit")
    async def on_placed(event: OrderPlaced) -> None:
        handled.append(event.order_id)
        if len(handled) == 3:
            done.set()

    outbox = _outbox_with_table(app.events.outbox(batch=2), app_db)
    stop = asyncio.Event()
    worker = app.worker()
    running = [
        asyncio.create_task(outbox.relay(app_db.database, interval=0.01, stop=stop)),
        asyncio.create_task(worker.run()),
    ]
    for n in range(3):
        with app_db.begin() as conn:
            outbox.add(conn, OrderPlaced(n))
    async with asyncio.timeout(30):
        await done.wait()
    stop.set()
    worker.stop()
    await asyncio.gather(*running)
    assert sorted(handled) == [0, 1, 2]
    assert app_db.query("SELECT COUNT(*) FROM conveyor_outbox") == [(0,)]


async def test_add_async_on_a_sqlalchemy_async_session(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    app = make_app()
    handled: list[int] = []

    @app.events.subscribe(OrderPlaced, group="audit")
    async def on_placed(event: OrderPlaced) -> None:
        handled.append(event.order_id)

    path = tmp_path / "async.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    outbox = app.events.outbox()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        outbox.create_table(conn)
    try:
        async with AsyncSession(engine) as session, session.begin():
            await outbox.add_async(session, OrderPlaced(8))
            with pytest.raises(BadInputError, match="async"):
                outbox.add(session, OrderPlaced(9))
    finally:
        await engine.dispose()
    assert await outbox.relay_once(lambda: sqlite3.connect(path)) == 1
    await app.work(burst=True)
    assert handled == [8]
