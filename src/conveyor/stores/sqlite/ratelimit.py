"""Rate limits in SQLite: every check is one transaction in ``<name>.ratelimit.db``.

The file is a sibling of the job store's, with its own connection thread, so a
check per request never queues behind a job transaction. It is opened on first
use: an app that limits nothing never makes it. The clock is read inside the
transaction, once the write lock is held, so the checks of every process on
the file are decided in the order they commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from conveyor.clock import Clock
from conveyor.errors import StoreUnavailableError
from conveyor.stores.ratelimit import RULES, Algorithm, Checked, Hit, Stored, decide
from conveyor.stores.sqlite.database import Database, on_connection, path_from_url

SWEEP_EVERY_MS = 10_000
"""How often (app clock) a process deletes the states whose time has passed."""


def ratelimit_path(url: str) -> Path:
    """``sqlite:///dir/conveyor.db`` -> ``dir/conveyor.ratelimit.db``."""
    path = path_from_url(url)
    return path.with_name(f"{path.stem}.ratelimit.db")


class SqliteRateLimitStore:
    """A :class:`~conveyor.stores.ratelimit.RateLimitStore` in a SQLite file."""

    DEFAULT_BUDGET = 1.0
    """A busy file, not a network: a check may wait on other processes' transactions."""

    def __init__(
        self,
        url: str,
        *,
        synchronous: str,
        busy_timeout_s: float,
        clock: Clock,
        budget: float | None = None,
    ) -> None:
        self.budget = budget or self.DEFAULT_BUDGET
        self.db = Database(
            ratelimit_path(url),
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
            schema="ratelimit_schema.sql",
        )
        self.clock = clock
        self._open = False
        self._opening: asyncio.Lock | None = None
        self._swept_at = 0

    async def _ready(self) -> None:
        if self._open:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self._open:
                await self.db.open()
                self._open = True

    async def check(self, hits: Sequence[Hit], token: str) -> Checked:
        async with self._bounded():
            return await self._check(hits, token)

    async def peek(self, hits: Sequence[Hit]) -> Checked:
        async with self._bounded():
            return await self._peek(hits)

    async def release(self, hits: Sequence[Hit], token: str) -> None:
        async with self._bounded():
            await self._release(hits, token)

    async def reset(self, keys: Sequence[tuple[str, str]]) -> None:
        async with self._bounded():
            await self._reset(keys)

    @asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """Open on first use; give up after the budget. The step may still commit on the
        connection's thread after that: the caller has decided without it, so a request
        is counted at most once here, never twice."""
        try:
            async with asyncio.timeout(self.budget):
                await self._ready()
                yield
        except TimeoutError:
            raise StoreUnavailableError(
                f"rate-limit store {self.db.path}: no answer within {self.budget:g}s"
            ) from None

    async def ping(self) -> None:
        async with self._bounded():
            await self.db.run(self.db.ping)

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.db.close()

    # -- steps on the connection's thread ------------------------------------------------

    @on_connection
    def _check(self, hits: Sequence[Hit], token: str) -> Checked:
        with self.db.transaction() as conn:
            now = self.clock.now_ms()
            checked, writes = decide(hits, lambda hit: _read(conn, hit), now, token, charge=True)
            for index, after in writes.items():
                _write(conn, hits[index], after)
            if now - self._swept_at >= SWEEP_EVERY_MS:
                self._swept_at = now
                conn.execute("DELETE FROM rate_limits WHERE expires_at <= ?", (now,))
                conn.execute("DELETE FROM rate_limit_leases WHERE expires_at <= ?", (now,))
        return checked

    @on_connection
    def _peek(self, hits: Sequence[Hit]) -> Checked:
        with _snapshot(self.db.conn) as conn:
            now = self.clock.now_ms()
            checked, _ = decide(hits, lambda hit: _read(conn, hit), now, "", charge=False)
        return checked

    @on_connection
    def _release(self, hits: Sequence[Hit], token: str) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "DELETE FROM rate_limit_leases WHERE policy = ? AND subject = ? AND token = ?",
                [(hit.policy, hit.subject, token) for hit in hits],
            )

    @on_connection
    def _reset(self, keys: Sequence[tuple[str, str]]) -> None:
        rows = [(policy, subject) for subject, policy in keys]
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM rate_limits WHERE policy = ? AND subject = ?", rows)
            conn.executemany("DELETE FROM rate_limit_leases WHERE policy = ? AND subject = ?", rows)


def _read(conn: sqlite3.Connection, hit: Hit) -> Stored:
    if hit.algorithm is Algorithm.CONCURRENCY:
        rows = conn.execute(
            "SELECT token, expires_at FROM rate_limit_leases WHERE policy = ? AND subject = ?",
            (hit.policy, hit.subject),
        ).fetchall()
        return dict(rows) or None
    row = conn.execute(
        "SELECT algorithm, a, b, c FROM rate_limits WHERE policy = ? AND subject = ?",
        (hit.policy, hit.subject),
    ).fetchone()
    if row is None or row[0] != hit.algorithm.value:  # none, or left by another algorithm
        return None
    if hit.algorithm is Algorithm.GCRA:
        return row[1]
    if hit.algorithm is Algorithm.FIXED_WINDOW:
        return (row[1], row[2])
    return (row[1], row[2], row[3])


def _write(conn: sqlite3.Connection, hit: Hit, after: Stored) -> None:
    if hit.algorithm is Algorithm.CONCURRENCY:
        conn.execute(
            "DELETE FROM rate_limit_leases WHERE policy = ? AND subject = ?",
            (hit.policy, hit.subject),
        )
        conn.executemany(
            "INSERT INTO rate_limit_leases (policy, subject, token, expires_at)"
            " VALUES (?, ?, ?, ?)",
            [(hit.policy, hit.subject, token, until) for token, until in after.items()],
        )
        return
    values = (after, 0, 0) if hit.algorithm is Algorithm.GCRA else (*after, 0)[:3]
    conn.execute(
        "INSERT INTO rate_limits (policy, subject, algorithm, a, b, c, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (policy, subject) DO UPDATE SET algorithm = excluded.algorithm,"
        " a = excluded.a, b = excluded.b, c = excluded.c, expires_at = excluded.expires_at",
        (
            hit.policy,
            hit.subject,
            hit.algorithm.value,
            *values,
            RULES[hit.algorithm].expires_at(hit, after),
        ),
    )


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every policy read from one snapshot of the file."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")
