"""One SQLite connection, owned by one thread, that async code calls into.

Every store operation is a plain function that runs a whole transaction;
:meth:`Database.run` sends it to the connection's thread, so one store call
costs one thread hop however many statements it runs, and the event loop
never blocks on SQLite's file lock when other processes hold it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import ParamSpec, TypeVar

from conveyor.errors import StoreUnavailableError

P = ParamSpec("P")
T = TypeVar("T")


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/x.db`` -> ``rel/x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


class Database:
    def __init__(
        self, path: Path, *, synchronous: str, busy_timeout_s: float, schema: str = "schema.sql"
    ) -> None:
        self.path = path
        self._schema = schema
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "database is not open"
        return self._conn

    def open_sync(self) -> None:
        """Open the connection in the calling thread (the sync facade uses this)."""
        if self._conn is not None:
            return
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            schema = resources.files("conveyor.stores.sqlite").joinpath(self._schema).read_text()
            conn.executescript(schema)
            _add_missing_columns(conn)
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:  # e.g. a file that is not a database: connect() succeeds
                conn.close()
            raise StoreUnavailableError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._conn = conn

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite")
        await self.run(self.open_sync)

    async def close(self) -> None:
        if self._executor is None:
            return
        await self.run(self.close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the connection's thread and wait for its result."""
        if self._executor is None:
            raise StoreUnavailableError(f"SQLite store {self.path} is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailableError(f"SQLite store {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the file's write lock up front."""
        with _immediate(self.conn) as conn:
            yield conn


ADDED_COLUMNS = {("jobs", "fence"): "INTEGER NOT NULL DEFAULT 0"}
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
