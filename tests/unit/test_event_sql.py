"""The statement runner the outbox and the audit handler share."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from conveyor import BadInputError
from conveyor.events.sql import Sql


class _NotAConnection:
    def cursor(self) -> None: ...


def test_sqlite3_placeholders_and_rows() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        sql = Sql(conn)
        assert sql.dialect == "sqlite"
        sql.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        sql.execute("INSERT INTO t VALUES (?, ?)", (1, "x"))
        assert sql.execute("SELECT a, b FROM t WHERE a = ?", (1,)) == [(1, "x")]


def test_an_unknown_connection_is_a_typed_error() -> None:
    with pytest.raises(BadInputError, match="not a supported connection"):
        Sql(_NotAConnection())
