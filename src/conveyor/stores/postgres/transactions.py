"""The statements conveyor runs on the application's own PostgreSQL connection.

``app.within(conn)`` inserts jobs through ``{schema}.enqueue``, the function
every insert of the store goes through: the job is in the application's
transaction, and the workers' wake-up (a NOTIFY) is sent when it commits.
Arrays are cast explicitly, so every driver (psycopg, asyncpg, SQLAlchemy on
either) binds them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.stores.base import NewJob
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.rows import enqueue_args

_ENQUEUE = (
    "SELECT {schema}.enqueue(CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]),"
    " CAST(? AS bytea[]), CAST(? AS bytea[]), CAST(? AS integer[]), CAST(? AS bigint[]),"
    " CAST(? AS bigint[]), CAST(? AS integer[]), CAST(? AS text[]), CAST(? AS bigint))"
)
_GROUPS = "SELECT grp, spec FROM {schema}.event_groups"
_NO_STORE = frozenset({"42883", "42P01", "3F000"})
"""Undefined function, undefined table, no such schema: the store is not in that database."""


class PostgresAppTransactions:
    """An :class:`~conveyor.stores.transactional.AppTransactionSql` for the backend's schema."""

    def __init__(self, db: PostgresConnection) -> None:
        self.db = db

    def enqueue(self, jobs: Sequence[NewJob], now: int) -> tuple[str, tuple[Any, ...]]:
        return self.db.sql(_ENQUEUE), enqueue_args(jobs, now)

    def groups(self) -> str:
        return self.db.sql(_GROUPS)

    def missing_store(self, sqlstate: str) -> bool:
        return sqlstate in _NO_STORE
