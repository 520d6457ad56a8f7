"""One way to run a statement on the application's own database connection.

The outbox, the audit handler and ``app.within(conn)`` write through whatever
the application already holds: a DB-API connection (``sqlite3``, ``psycopg``,
``psycopg2``) or a SQLAlchemy ``Connection`` / ``Session`` (sync), or a
psycopg ``AsyncConnection``, an asyncpg ``Connection`` or a SQLAlchemy
``AsyncConnection`` / ``AsyncSession`` (async). Statements here are written
with ``?`` placeholders and rewritten once per connection kind; they never
contain a literal ``?``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal

from conveyor.errors import BadInputError

Dialect = Literal["sqlite", "postgresql"]
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_DRIVERS = {"sqlite3": "sqlite", "psycopg": "postgresql", "psycopg2": "postgresql"}


class Sql:
    """A statement runner for one connection (or session) of the application's."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        module = type(conn).__module__
        self.is_sqlalchemy = module.startswith("sqlalchemy")
        self.is_async = self.is_sqlalchemy and "asyncio" in module
        if self.is_sqlalchemy:
            self.dialect = _dialect(_sqlalchemy_dialect(conn))
            self._placeholder = ""
        elif _async_placeholder(conn) is not None:
            self.is_async = True
            self.dialect = "postgresql"
            self._placeholder = _async_placeholder(conn) or ""
        else:
            driver = sys.modules.get(module.split(".")[0])
            style = getattr(driver, "paramstyle", None)
            if style not in _PLACEHOLDERS or not hasattr(conn, "cursor"):
                raise BadInputError(
                    f"{type(conn).__qualname__} is not a supported connection: pass a DB-API"
                    " connection (sqlite3, psycopg) or a SQLAlchemy Connection or Session"
                )
            self.dialect = _dialect(_DRIVERS.get(module.split(".")[0], module))
            self._placeholder = _PLACEHOLDERS[style]

    def _statement(self, sql: str, params: Sequence[Any]) -> tuple[Any, Any]:
        if self._placeholder == "$":
            parts = sql.split("?")
            numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
            return numbered, tuple(params)
        if not self.is_sqlalchemy:
            return sql.replace("?", self._placeholder), tuple(params)
        from sqlalchemy import text

        parts = sql.split("?")
        named = parts[0] + "".join(f":p{i}{part}" for i, part in enumerate(parts[1:]))
        return text(named), {f"p{i}": value for i, value in enumerate(params)}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; returns its rows (empty for statements without any)."""
        if self.is_async:
            raise BadInputError(
                f"{type(self.conn).__qualname__} is async: use the *_async method instead"
            )
        statement, bound = self._statement(sql, params)
        if self.is_sqlalchemy:
            result = self.conn.execute(statement, bound)
            return [tuple(row) for row in result] if result.returns_rows else []
        cursor = self.conn.cursor()
        try:
            cursor.execute(statement, bound)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()

    async def execute_async(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``execute`` on an async connection or session."""
        if not self.is_async:
            raise BadInputError(
                f"{type(self.conn).__qualname__} is not async: use the sync method instead"
            )
        statement, bound = self._statement(sql, params)
        if self._placeholder == "$":  # asyncpg
            return [tuple(row) for row in await self.conn.fetch(statement, *bound)]
        if not self.is_sqlalchemy:  # psycopg's AsyncConnection
            async with self.conn.cursor() as cursor:
                await cursor.execute(statement, bound)
                return [tuple(r) for r in await cursor.fetchall()] if cursor.description else []
        result = await self.conn.execute(statement, bound)
        return [tuple(row) for row in result] if result.returns_rows else []


def _async_placeholder(conn: Any) -> str | None:
    """The placeholder of an async PostgreSQL driver's connection (``$``: ``$1, $2, ...``)."""
    cls = type(conn)
    driver = cls.__module__.split(".")[0]
    if driver == "asyncpg":  # a Connection, or a pool's proxy of one
        return "$"
    if driver == "psycopg" and any(c.__name__ == "AsyncConnection" for c in cls.__mro__):
        return "%s"
    return None


def _sqlalchemy_dialect(conn: Any) -> str:
    dialect = getattr(conn, "dialect", None)
    if dialect is None:  # a Session: its bind has the dialect
        bind = conn.get_bind()
        dialect = bind.dialect
    return str(dialect.name)


def _dialect(name: str) -> Dialect:
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    raise BadInputError(f"the {name} database is not supported; use SQLite or PostgreSQL")
