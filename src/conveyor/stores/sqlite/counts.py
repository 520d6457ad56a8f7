"""How many jobs each queue holds in each state: ``job_counts``, kept by every step.

Counting the jobs themselves reads an index entry per job (about 0.2 s for a
million), so every transaction that inserts, moves or deletes jobs notes
what it did in a :class:`Counts` and adds it to ``job_counts`` before it
commits: one upsert per (queue, state) it touched, whatever the number of
jobs. A trigger would do it by itself, but costs a quarter of the finish
throughput (measured: +10 us per job drained). ``tests/conformance`` checks
after every transition of the state table, and after flows, debounces,
retention and cleans, that the counts are what a listing of each state finds.

A file made before the table existed is counted once when it is opened
(:func:`seed_counts`).
"""

from __future__ import annotations

import sqlite3


class Counts:
    """The moves of one transaction, to add to ``job_counts`` before it commits."""

    __slots__ = ("_deltas",)

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, str], int] = {}

    def add(self, queue: str, state: str, n: int = 1) -> None:
        """``n`` jobs (negative: fewer) of ``queue`` in ``state``."""
        key = (queue, state)
        self._deltas[key] = self._deltas.get(key, 0) + n

    def move(self, queue: str, old: str, new: str, n: int = 1) -> None:
        if old != new and n:
            self.add(queue, old, -n)
            self.add(queue, new, n)

    def apply(self, conn: sqlite3.Connection) -> None:
        changed = [(queue, state, n) for (queue, state), n in self._deltas.items() if n]
        if changed:
            conn.executemany(
                "INSERT INTO job_counts (queue, state, n) VALUES (?,?,?)"
                " ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
                changed,
            )
        self._deltas.clear()


def seed_counts(conn: sqlite3.Connection) -> None:
    """Count a file's jobs once, when ``job_counts`` is new to it (in the write lock, so two
    processes opening it at once count it once)."""
    if conn.execute("SELECT 1 FROM job_counts LIMIT 1").fetchone() is not None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM job_counts LIMIT 1").fetchone() is None:
            conn.execute(
                "INSERT INTO job_counts (queue, state, n)"
                " SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
