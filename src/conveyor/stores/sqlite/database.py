"""One SQLite connection, owned by one thread, that async code calls into.

Every store step is a plain method that runs on the connection (at most one
transaction, or one read); :func:`on_connection` makes it an async method
that :meth:`Database.run` sends to the connection's thread, so one store
call costs one thread hop however many statements it runs, and the event
loop never blocks on SQLite's file lock when other processes hold it.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from conveyor.errors import NotFoundError, StoreFullError, StoreUnavailableError
from conveyor.stores.failures import StoreFailures
from conveyor.stores.sqlite.counts import seed_counts

P = ParamSpec("P")
T = TypeVar("T")


_KINDS = {
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
    sqlite3.SQLITE_READONLY: "read_only",
}
"""SQLite's primary result codes that have a kind of their own (``errors.STORE_ERROR_KINDS``)."""


def store_error(exc: sqlite3.DatabaseError, path: Path) -> StoreUnavailableError:
    """The conveyor error for a failed SQLite step: ``StoreFullError`` for a full disk."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return StoreFullError(f"SQLite store {path}: the disk is full: {exc}")
    return StoreUnavailableError(f"SQLite store {path}: {exc}", _KINDS.get(code, "other"))


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/x.db`` -> ``rel/x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


class Database:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        busy_timeout_s: float,
        schema: str = "schema.sql",
        failures: StoreFailures | None = None,
    ) -> None:
        self.path = path
        self.failures = StoreFailures() if failures is None else failures
        """Where every failed step is counted by kind (the app's metrics listen)."""
        self._schema = schema
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "database is not open"
        return self._conn

    def open_sync(self, create: bool = True) -> None:
        """Open the connection in the calling thread, making the file unless ``create`` is False."""
        if self._conn is not None:
            return
        if not create and not self.path.is_file():
            raise NotFoundError(f"no SQLite store at {self.path.resolve()}")
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            use_wal(conn, self._busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            schema = resources.files("conveyor.stores.sqlite").joinpath(self._schema).read_text()
            _add_missing_columns(conn)  # before the schema's triggers name them
            conn.executescript(schema)
            if self._schema == "schema.sql":  # the jobs' file (not a sibling: cache, limits)
                seed_counts(conn)
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:  # e.g. a file that is not a database: connect() succeeds
                conn.close()
            raise StoreUnavailableError(
                f"cannot open SQLite database {self.path}: {exc}", "other"
            ) from exc
        self._conn = conn

    async def open(self, create: bool = True) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite")
        try:
            await self.run(self.open_sync, create)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        await self.run(self.close_sync)
        executor, self._executor = self._executor, None
        executor.shutdown(wait=True)

    def close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the connection's thread and wait for its result."""
        if self._executor is None:
            raise StoreUnavailableError(f"SQLite store {self.path} is not open", "other")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self.failures.record(store_error(exc, self.path)) from exc

    def ping(self) -> None:
        """One trivial read on the connection's thread."""
        self.conn.execute("SELECT 1")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the file's write lock up front."""
        with _immediate(self.conn) as conn:
            yield conn


class OnConnection(Protocol):
    db: Database


S = TypeVar("S", bound=OnConnection)


def on_connection(
    step: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make ``step`` (a method that runs on ``self.db``'s connection) an async method.

    The step runs on the connection's thread, so it may use ``self.db.conn``
    and ``self.db.transaction()`` directly and block on SQLite's lock.
    """

    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.db.run(step, self, *args, **kwargs)

    functools.update_wrapper(run, step)
    return run


WAL_RETRY_SECONDS = 0.005


def use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode, waiting up to ``timeout`` for other connections.

    Switching a new file to WAL needs it to itself, and SQLite answers ``database
    is locked`` at once, without its busy timeout, to a connection that races
    another one through the switch: four connections opening one new store
    together (worker processes starting at once) failed about one round in seven
    here. Once a file is in WAL mode (it stays so) the switch never waits.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if code != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_RETRY_SECONDS)


ADDED_COLUMNS = {
    ("jobs", "fence"): "INTEGER NOT NULL DEFAULT 0",
    ("jobs", "keyed"): "INTEGER NOT NULL DEFAULT 0",
    ("schedules", "paused"): "INTEGER NOT NULL DEFAULT 0",
}
"""Columns added to a table after its first release: a file made before gets them on open."""


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for (table, column), definition in ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:  # (a file of another schema has no such table)
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # also when COMMIT itself failed
            conn.execute("ROLLBACK")
        raise
