"""The connections of a PostgreSQL backend, which all of its stores share.

One asyncpg pool per backend (``pool_size`` connections at most, prepared
statements cached per connection), every statement written against the
backend's schema (``{schema}`` in the SQL text, rendered once per statement).
Every call is bounded by ``timeout``; connection trouble becomes
``StoreUnavailableError``, a value the server refuses (``22xxx``, e.g. a NUL
character in a job id) becomes ``BadInputError``, and a deadlock or
serialization failure is retried, so a transient conflict between two
workers never reaches the caller.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from asyncpg import exceptions as pg_errors

from conveyor.errors import (
    BadInputError,
    ConveyorError,
    ProgrammingError,
    StoreRefusedError,
    StoreUnavailableError,
)
from conveyor.masking import mask_url
from conveyor.stores.failures import StoreFailures
from conveyor.stores.postgres.url import PostgresUrl, parse_url

T = TypeVar("T")
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of the pool (or one of its own) that a step runs statements on."""
Record = asyncpg.Record

CONFLICT_RETRIES = 8
"""Deadlocks and serialization failures retried before the call gives up."""
SESSION_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}
"""JIT compilation and parallel workers only ever add milliseconds to the short statements
of a queue: a search's walk of up to 1,001 index entries took 30 ms with the worker the
planner chose (most of it starting the worker) and 6-9 ms without (bench/README.md)."""
SERVER_SETTINGS = {**SESSION_SETTINGS, "application_name": "conveyor"}


class PostgresConnection:
    """A pool, the schema its statements are written against, and error mapping."""

    def __init__(self, url: str, *, timeout: float, failures: StoreFailures | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.failures = StoreFailures() if failures is None else failures
        """Where every call that failed for the store's sake is counted (the app's metrics)."""
        self.parsed: PostgresUrl = parse_url(url)
        self.schema = self.parsed.schema
        self.channel = self.schema
        """The prefix of the notification channels (``<channel>_work``, ``<channel>_cache``)."""
        self._pool: asyncpg.Pool | None = None
        self._rendered: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"PostgresConnection({mask_url(self.url)!r})"

    # -- lifecycle -------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailableError(f"PostgreSQL store {mask_url(self.url)} is not open")
        return self._pool

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self, *, min_size: int = 1, max_size: int | None = None) -> None:
        if self._pool is not None:
            return
        size = max_size or self.parsed.pool_size
        self._pool = await self.call(
            lambda: asyncpg.create_pool(
                self.parsed.dsn,
                min_size=min(min_size, size),
                max_size=size,
                timeout=self.timeout,
                server_settings=self._settings(),
                reset=_keep_session,
            )
        )

    async def connect(self) -> Conn:
        """A connection of its own, outside the pool (a listener's)."""
        conn: Conn = await self.call(
            lambda: asyncpg.connect(
                self.parsed.dsn, timeout=self.timeout, server_settings=self._settings()
            )
        )
        return conn

    def _settings(self) -> dict[str, str]:
        # An application_name given in the URL wins over conveyor's.
        if "application_name=" in self.parsed.dsn:
            return dict(SESSION_SETTINGS)
        return dict(SERVER_SETTINGS)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(self.timeout):
                    await pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    # -- statements ------------------------------------------------------------

    def sql(self, template: str) -> str:
        """``template`` with ``{schema}`` and ``{channel}`` filled in (cached)."""
        found = self._rendered.get(template)
        if found is None:
            found = template.replace("{schema}", self.schema).replace("{channel}", self.channel)
            self._rendered[template] = found
        return found

    async def fetch(self, template: str, *args: Any) -> list[Record]:
        sql = self.sql(template)
        return await self.run(lambda conn: conn.fetch(sql, *args))

    async def fetchrow(self, template: str, *args: Any) -> Record | None:
        sql = self.sql(template)
        return await self.run(lambda conn: conn.fetchrow(sql, *args))

    async def fetchval(self, template: str, *args: Any) -> Any:
        sql = self.sql(template)
        return await self.run(lambda conn: conn.fetchval(sql, *args))

    async def execute(self, template: str, *args: Any) -> str:
        sql = self.sql(template)
        return await self.run(lambda conn: conn.execute(sql, *args))

    async def run(self, step: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``step`` on a pooled connection (no transaction: one statement is one)."""

        async def on_pooled() -> T:
            async with self.pool.acquire() as conn:
                return await step(conn)

        return await self._retried(on_pooled)

    async def transaction(self, step: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``step`` in one transaction on a pooled connection, retried on conflicts.

        ``step`` may run more than once (after a deadlock), so it must not keep
        anything from an attempt that rolled back.
        """

        async def in_transaction() -> T:
            async with self.pool.acquire() as conn, conn.transaction():
                return await step(conn)

        return await self._retried(in_transaction)

    async def _retried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        reconnected = False
        for conflicts in range(CONFLICT_RETRIES + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    return await attempt()
            except ConveyorError:
                raise
            except pg_errors.TransactionRollbackError:  # 40001, 40P01: run it again
                if conflicts == CONFLICT_RETRIES:
                    break
                await asyncio.sleep(random.uniform(0.001, 0.005) * 2 ** min(conflicts, 5))
            except (pg_errors.ConnectionDoesNotExistError, pg_errors.AdminShutdownError):
                # A pooled connection died with a server restart; the pool replaces it,
                # and one more try gets a fresh one. (Every step is token-checked or
                # idempotent, so one that committed before its answer was lost does no harm.)
                if reconnected:
                    raise self.failures.record(
                        StoreUnavailableError(
                            f"PostgreSQL store {mask_url(self.url)} lost its connection"
                        )
                    ) from None
                reconnected = True
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise self._failed(exc) from None
        raise self.failures.record(
            StoreUnavailableError(
                f"PostgreSQL store {mask_url(self.url)}: conflicting transactions kept rolling back"
            )
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` within ``timeout``, driver and server errors mapped to conveyor's."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(self.timeout):
                return await fn()
        except ConveyorError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: BaseException) -> ConveyorError:
        """The conveyor error for ``exc``, counted in ``failures`` when the store is at fault."""
        error = translate(exc, self.url)
        if isinstance(error, StoreUnavailableError | StoreRefusedError):
            return self.failures.record(error)
        return error


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection going back to the pool needs beyond asyncpg's own rollback of an
    open transaction: nothing. The default reset (RESET ALL, UNLISTEN *, releasing
    advisory locks) is one more round trip per store call, and conveyor's statements
    change no session state on pooled connections (listeners and the migrations'
    session lock use connections of their own)."""


def translate(exc: BaseException, url: str) -> ConveyorError:
    """The conveyor error for a driver or server error ``exc`` (from a call to ``url``)."""
    where = f"PostgreSQL store {mask_url(url)}"
    if isinstance(exc, TimeoutError):
        return StoreUnavailableError(f"{where} did not answer in time")
    if isinstance(exc, asyncpg.PostgresError) and str(exc.sqlstate).startswith("CV"):
        return BadInputError(str(exc))  # refused by a rule of conveyor's own SQL
    if isinstance(exc, pg_errors.DataError):  # 22: the server refused a value
        return BadInputError(f"{where} refused a value: {exc}")
    if isinstance(exc, ValueError):  # the driver could not encode an argument: a bug
        return ProgrammingError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(
        exc,
        OSError
        | pg_errors.PostgresConnectionError  # 08: connection exceptions
        | pg_errors.InsufficientResourcesError  # 53: disk full, too many connections
        | pg_errors.OperatorInterventionError  # 57: shutdown, cancelled
        | pg_errors.InvalidAuthorizationSpecificationError  # 28: bad password
        | pg_errors.InvalidCatalogNameError  # 3D000: no such database
        | pg_errors.TransactionRollbackError
        | asyncpg.InterfaceError,
    ):
        return StoreUnavailableError(f"{where} is unreachable: {type(exc).__name__}: {exc}")
    return ProgrammingError(f"{where}: {type(exc).__name__}: {exc}")
