"""What a backend gives conveyor to run on the application's own database connection.

A backend whose data lives in a database the application also writes to
(PostgreSQL) can insert jobs inside the application's transaction, so a job
exists if and only if that transaction commits (``app.within(conn)``). The
backend only supplies the statements; ``conveyor/transactional.py`` builds the
jobs and runs them through the application's driver (``events/sql.py``).

Statements use ``?`` placeholders (``events/sql.py`` rewrites them per driver).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from conveyor.stores.base import NewJob


class AppTransactionSql(Protocol):
    def enqueue(self, jobs: Sequence[NewJob], now: int) -> tuple[str, tuple[Any, ...]]:
        """The statement inserting ``jobs`` (an id that exists is left as it is) and its
        parameters."""
        ...

    def groups(self) -> str:
        """A statement reading the recorded event groups: rows of (group, spec bytes)."""
        ...

    def missing_store(self, sqlstate: str) -> bool:
        """Whether a statement failed with ``sqlstate`` because the connection's database
        holds no store of this backend (a wrong database, or the app never opened it)."""
        ...
