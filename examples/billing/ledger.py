"""The billing database: every row of every validated file, and its findings.

Plain ``sqlite3`` in WAL mode, so several validation jobs can write at once
(each waits its turn for the write lock) while you query it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol

from .rules import COLUMNS, CheckedRow

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    {", ".join(f"{column} TEXT" for column in COLUMNS)},
    valid INTEGER NOT NULL,
    PRIMARY KEY (file, line)
);
CREATE TABLE IF NOT EXISTS findings (
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    rule TEXT NOT NULL,
    column_name TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_file_rule ON findings (file, rule);
"""
# Amounts stay TEXT, exactly as the file had them: SQLite has no decimal type,
# and a REAL would turn 0.10 + 0.20 into 0.30000000000000004.

INSERT_RECORD = (
    f"INSERT INTO records (file, line, {', '.join(COLUMNS)}, valid)"
    f" VALUES (?, ?, {', '.join('?' for _ in COLUMNS)}, ?)"
)
INSERT_FINDING = "INSERT INTO findings (file, line, rule, column_name, message) VALUES (?,?,?,?,?)"


TIMEOUT_SECONDS = 30


class Executes(Protocol):
    def execute(self, sql: str, /) -> Any: ...


def use_wal(conn: Executes, timeout: float = TIMEOUT_SECONDS) -> None:
    """Switch the database to WAL mode, waiting for other connections doing the same.

    On a new file SQLite answers ``database is locked`` at once (its busy timeout
    does not apply) to a connection that races another one through the switch, as
    the validation jobs do when they start together on a fresh database.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=TIMEOUT_SECONDS, isolation_level=None)) as conn:
        use_wal(conn)
        conn.executescript(SCHEMA)
        yield conn


def replace_file(path: Path, file: str, rows: Sequence[CheckedRow]) -> None:
    """Store ``file``'s rows and findings in place of any earlier run's, atomically.

    Deleting first makes a re-run of the same file (a retry, or the same export
    uploaded again) leave exactly one copy; the single transaction means a
    reader never sees half a file.
    """
    records = [
        (file, row.line, *(row.values.get(column) for column in COLUMNS), int(row.valid))
        for row in rows
    ]
    findings = [
        (file, row.line, finding.rule, finding.column, finding.message)
        for row in rows
        for finding in row.findings
    ]
    with connect(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM records WHERE file = ?", (file,))
            conn.execute("DELETE FROM findings WHERE file = ?", (file,))
            conn.executemany(INSERT_RECORD, records)
            conn.executemany(INSERT_FINDING, findings)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
