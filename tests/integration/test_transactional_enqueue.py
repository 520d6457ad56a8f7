"""Jobs and events written in the application's own PostgreSQL transaction (``app.within``).

For every kind of connection an application may hold (psycopg sync and async,
asyncpg, SQLAlchemy connections and sessions, sync and async): a job enqueued
and an event published in a transaction that rolls back leave nothing behind;
in one that commits they exist from the commit on (not before) and run exactly
once. A process killed before its commit leaves no job; one killed right after
leaves exactly the one it committed. Any store but PostgreSQL refuses.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import psycopg
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from conveyor import (
    BadInputError,
    Conveyor,
    EventMeta,
    InTransaction,
    JobState,
    NotFoundError,
    NotSupportedError,
)
from conveyor.clock import Clock, ManualClock
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


class OrderPlaced(msgspec.Struct):
    order_id: int


class Shop:
    """An app with one task and one subscriber, recording every run."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.app = Conveyor(url, log_level="WARNING", clock=clock)
        self.runs: list[int] = []
        self.events: list[tuple[int, str]] = []

        @self.app.task(name="send_receipt")
        async def send_receipt(order_id: int) -> None:
            self.runs.append(order_id)

        @self.app.events.subscribe(OrderPlaced, group="audit")
        async def audit(event: OrderPlaced, meta: EventMeta) -> None:
            self.events.append((event.order_id, meta.event_id))

        self.send_receipt = send_receipt


@pytest.fixture
async def shop(postgres_server: PostgresServer) -> AsyncIterator[Shop]:
    shop = Shop(postgres_server.empty_store())
    async with shop.app:
        await shop.app.events.declare()
        with psycopg.connect(postgres_server.store_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS orders (id integer PRIMARY KEY)")
            conn.execute("TRUNCATE orders")
        yield shop


# -- the application's connections, each as "run this in a transaction, then commit or not" ----

Body = Callable[[InTransaction], Awaitable[None]]
Run = Callable[[Shop, str, Body, bool], Awaitable[None]]


async def _psycopg(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    with psycopg.connect(dsn) as conn:  # sync: the body's calls are the *_sync ones
        conn.execute("INSERT INTO orders (id) VALUES (7)")
        await body(shop.app.within(conn))
        conn.commit() if commit else conn.rollback()


async def _psycopg_async(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute("INSERT INTO orders (id) VALUES (7)")
        await body(shop.app.within(conn))
        await (conn.commit() if commit else conn.rollback())


async def _asyncpg(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("INSERT INTO orders (id) VALUES (7)")
        await body(shop.app.within(conn))
        await (tx.commit() if commit else tx.rollback())
    finally:
        await conn.close()


async def _sqlalchemy_connection(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO orders (id) VALUES (7)"))
            await body(shop.app.within(conn))
            conn.commit() if commit else conn.rollback()
    finally:
        engine.dispose()


async def _sqlalchemy_session(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with Session(engine) as session:
            session.execute(sqlalchemy.text("INSERT INTO orders (id) VALUES (7)"))
            await body(shop.app.within(session))
            session.commit() if commit else session.rollback()
    finally:
        engine.dispose()


async def _sqlalchemy_async(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as conn:
            assert isinstance(conn, AsyncConnection)
            await conn.execute(sqlalchemy.text("INSERT INTO orders (id) VALUES (7)"))
            await body(shop.app.within(conn))
            await (conn.commit() if commit else conn.rollback())
    finally:
        await engine.dispose()


async def _sqlalchemy_async_session(shop: Shop, dsn: str, body: Body, commit: bool) -> None:
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    try:
        async with AsyncSession(engine) as session:
            await session.execute(sqlalchemy.text("INSERT INTO orders (id) VALUES (7)"))
            await body(shop.app.within(session))
            await (session.commit() if commit else session.rollback())
    finally:
        await engine.dispose()


SYNC: dict[str, Run] = {
    "psycopg": _psycopg,
    "sqlalchemy-connection": _sqlalchemy_connection,
    "sqlalchemy-session": _sqlalchemy_session,
}
ASYNC: dict[str, Run] = {
    "psycopg-async": _psycopg_async,
    "asyncpg": _asyncpg,
    "sqlalchemy-async-connection": _sqlalchemy_async,
    "sqlalchemy-async-session": _sqlalchemy_async_session,
}


def _body(shop: Shop, kind: str, seen: list[bool]) -> Body:
    """Enqueue job "receipt-7" and publish event "order-7"; note whether the job was
    visible to the app's own connections before the commit."""

    async def body(tx: InTransaction) -> None:
        call = shop.send_receipt.options(job_id="receipt-7").call(7)
        if kind in SYNC:
            assert tx.enqueue_sync(call) == ["receipt-7"]
            tx.publish_sync(OrderPlaced(7), event_id="order-7")
        else:
            assert await tx.enqueue(call) == ["receipt-7"]
            await tx.publish(OrderPlaced(7), event_id="order-7")
        seen.append(await _exists(shop, "receipt-7"))

    return body


async def _exists(shop: Shop, job_id: str) -> bool:
    try:
        await shop.app.jobs.get(job_id)
    except NotFoundError:
        return False
    return True


@pytest.mark.parametrize("kind", [*SYNC, *ASYNC])
async def test_a_rolled_back_transaction_leaves_no_job_and_no_event(
    kind: str, shop: Shop, postgres_server: PostgresServer
) -> None:
    seen: list[bool] = []
    await {**SYNC, **ASYNC}[kind](shop, postgres_server.store_dsn, _body(shop, kind, seen), False)
    assert seen == [False]  # never visible outside the transaction
    assert not await _exists(shop, "receipt-7")
    counts = await shop.app.jobs.counts()
    assert all(n == 0 for states in counts.values() for n in states.values())
    await shop.app.work(burst=True)
    assert shop.runs == []
    assert shop.events == []


@pytest.mark.parametrize("kind", [*SYNC, *ASYNC])
async def test_a_committed_transaction_runs_its_job_and_delivers_its_event_once(
    kind: str, shop: Shop, postgres_server: PostgresServer
) -> None:
    seen: list[bool] = []
    await {**SYNC, **ASYNC}[kind](shop, postgres_server.store_dsn, _body(shop, kind, seen), True)
    assert seen == [False]  # not before the commit
    job = await shop.app.jobs.get("receipt-7")
    assert job.status is JobState.WAITING
    await shop.app.work(burst=True)
    await shop.app.work(burst=True)
    assert shop.runs == [7]
    assert shop.events == [(7, "order-7")]
    assert (await shop.app.jobs.get("receipt-7")).status is JobState.COMPLETED


async def test_a_worker_waiting_for_work_is_woken_by_the_commit(
    shop: Shop, postgres_server: PostgresServer
) -> None:
    # On a clock that never moves, an idle worker's wait never times out: only the
    # notification sent at the commit can wake it.
    clock = ManualClock()
    other = Shop(shop.app.settings.store_url, clock=clock)
    worker = other.app.worker()
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # idle now, listening for its queues
        async with await psycopg.AsyncConnection.connect(postgres_server.store_dsn) as conn:
            await shop.app.within(conn).enqueue(shop.send_receipt.call(8))
            await asyncio.sleep(0.3)
            assert other.runs == []  # not committed yet
        async with asyncio.timeout(10):
            while other.runs != [8]:
                await asyncio.sleep(0.01)
    finally:
        worker.stop()
        # A stop asked during a claim can be missed until the worker's next idle wait ends
        # (jobs/worker.py clears its wake-up after the claim): let the clock run until then.
        async with asyncio.timeout(30):
            while not running.done():
                clock.advance(1)
                await asyncio.sleep(0.01)
        await running
        await other.app.close()


async def test_enqueueing_an_existing_id_in_a_transaction_adds_nothing(
    shop: Shop, postgres_server: PostgresServer
) -> None:
    first = await shop.send_receipt.options(job_id="receipt-9").enqueue(9)
    async with await psycopg.AsyncConnection.connect(postgres_server.store_dsn) as conn:
        call = shop.send_receipt.options(job_id="receipt-9").call(10)
        assert await shop.app.within(conn).enqueue(call) == ["receipt-9"]
    await shop.app.work(burst=True)
    assert shop.runs == [9]
    assert (await shop.app.jobs.get(first.id)).result is None


async def test_a_connection_to_another_database_is_told_where_the_store_is(
    shop: Shop, postgres_server: PostgresServer
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_server.dsn) as conn:
        with pytest.raises(NotFoundError, match="holds no conveyor store"):
            await shop.app.within(conn).enqueue(shop.send_receipt.call(1))


async def test_the_wrong_method_for_the_connection_is_a_clear_error(
    shop: Shop, postgres_server: PostgresServer
) -> None:
    call = shop.send_receipt.options(debounce=("k", 1.0)).call(1)
    with psycopg.connect(postgres_server.store_dsn) as conn:
        with pytest.raises(NotSupportedError, match="debounce"):
            shop.app.within(conn).enqueue_sync(call)
        with pytest.raises(BadInputError, match="not async"):
            await shop.app.within(conn).enqueue(shop.send_receipt.call(1))


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_any_other_store_refuses(url: str, tmp_path: Path, postgres_server: PostgresServer) -> None:
    app = Conveyor(url if url != "sqlite" else f"sqlite:///{tmp_path / 'c.db'}")
    with (
        psycopg.connect(postgres_server.store_dsn) as conn,
        pytest.raises(NotSupportedError, match="needs a PostgreSQL store"),
    ):
        app.within(conn)


def test_a_sqlite_connection_is_refused_on_a_postgres_store(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    app = Conveyor(postgres_server.store_url())
    conn = sqlite3.connect(tmp_path / "app.db")
    try:
        with pytest.raises(NotSupportedError, match="got a sqlite connection"):
            app.within(conn)
    finally:
        conn.close()


# -- crashes: the transaction decides, not the process ----------------------------------------

CHILD = """
import os, signal, sys
import psycopg
from conveyor import Conveyor

app = Conveyor(sys.argv[1], log_level="WARNING")

@app.task(name="send_receipt")
def send_receipt(order_id: int) -> None: ...

with psycopg.connect(sys.argv[2]) as conn:
    conn.execute("INSERT INTO orders (id) VALUES (%s)", (int(sys.argv[4]),))
    app.within(conn).enqueue_sync(send_receipt.options(job_id=sys.argv[4]).call(1))
    if sys.argv[3] == "commit":
        conn.commit()
    os.kill(os.getpid(), signal.SIGKILL)
"""


async def test_a_killed_process_leaves_a_job_exactly_when_it_had_committed(
    shop: Shop, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    for step, order in (("die", "11"), ("commit", "12")):
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                shop.app.settings.store_url,
                postgres_server.store_dsn,
                step,
                order,
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == -9, proc.stderr
    assert not await _exists(shop, "11")
    assert (await shop.app.jobs.get("12")).status is JobState.WAITING
