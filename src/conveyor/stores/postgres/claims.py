"""The worker's side of the PostgreSQL job store: enqueue, and finish + claim in one statement.

``exchange`` is one call of ``{schema}.exchange`` (``sql/functions/exchange.sql``):
one round trip records every finished outcome and claims the next batch
(``FOR UPDATE SKIP LOCKED``, so workers never wait on each other's rows).
Idle workers LISTEN on ``<schema>_work``, which every insert of a ready job
notifies at commit, and otherwise sleep until the earliest scheduled job or
limit slot is due, at most a second (``poll_interval`` while the listening
connection is down).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.base import ClaimedJob, JobState, NewJob, Outcome
from conveyor.stores.notify import Notifier
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.postgres.listener import Listener
from conveyor.stores.postgres.rows import ENQUEUE, created_flags, enqueue_args
from conveyor.stores.search import error_keys, joined_keys

IDLE_WAIT_SECONDS = 1.0
"""Longest an idle worker waits for a notification before it looks again."""

_EXCHANGE = (
    "SELECT * FROM {schema}.exchange($1::text[], $2::text[], $3::text[], $4::bigint[],"
    " $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[], $9::bytea[], $10::text[],"
    " $11::text[], $12::text[], $13::integer[],"
    " $14::text[], $15::integer, $16::text, $17::bigint, $18::text, $19::bigint)"
)


class WorkSignal:
    """Which queues were notified: a version to compare, and the waiters to wake."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: dict[asyncio.Event, frozenset[str]] = {}

    def notify(self, queue: str) -> None:
        self.version += 1
        for event, queues in self._waiters.items():
            if queue in queues:
                event.set()

    def notify_all(self) -> None:
        """Anything may be ready: the listener (re)connected, and what was sent while it
        was away is lost."""
        self.version += 1
        for event in self._waiters:
            event.set()

    def watch(self, event: asyncio.Event, queues: Sequence[str]) -> None:
        self._waiters[event] = frozenset(queues)

    def forget(self, event: asyncio.Event) -> None:
        self._waiters.pop(event, None)


class PostgresClaims:
    """Enqueue and the exchange step of :class:`~conveyor.stores.postgres.jobs.PostgresJobStore`."""

    db: PostgresConnection
    clock: Clock
    notifier: Notifier
    work: WorkSignal
    listener: Listener
    untrimmed: dict[tuple[str, str], int]
    """Finishes per (queue, state) since that count-retention trim last ran."""
    seen_work: dict[tuple[str, ...], int]
    """Per set of queues, the work signal's version when its last claim began."""
    next_due: int | None
    """When nothing was claimed: the earliest time a job becomes due or a limit opens."""

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        inserted: list[str] = await self.db.fetchval(
            ENQUEUE, *enqueue_args(jobs, self.clock.now_ms())
        )
        return created_flags(jobs, inserted)

    async def exchange(
        self,
        finished: Sequence[Outcome],
        queues: Sequence[str],
        claim: int,
        worker: str,
        lease_ms: int,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        trims = self._trims(finished)
        self.seen_work[tuple(queues)] = self.work.version
        token = secrets.token_hex(8)
        row = await self.db.fetchrow(
            _EXCHANGE,
            [o.id for o in finished],
            [o.token for o in finished],
            [o.state.value for o in finished],
            [o.finished_at for o in finished],
            [o.result for o in finished],
            [o.error for o in finished],
            [o.run_at for o in finished],
            [o.expires_at for o in finished],
            [o.progress for o in finished],
            [_error_keys(o) for o in finished],
            [queue for queue, _ in trims],
            [state for _, state in trims],
            list(trims.values()),
            list(queues),
            claim,
            worker,
            lease_ms,
            token,
            self.clock.now_ms(),
        )
        assert row is not None
        if finished:
            self.notifier.notify()
        ids = row["c_ids"] or []
        claimed = [
            ClaimedJob(
                id=job_id,
                queue=row["c_queues"][i],
                task=row["c_tasks"][i],
                payload=row["c_payloads"][i],
                options=row["c_options"][i],
                attempts=row["c_attempts"][i],
                token=token,
                run_at=row["c_run_ats"][i],
                created_at=row["c_created"][i],
                started_at=row["c_started"][i],
                priority=row["c_priorities"][i],
                fence=row["c_fences"][i],
            )
            for i, job_id in enumerate(ids)
        ]
        self.next_due = row["next_due"] if claim and not claimed else None
        return list(row["accepted"] or []), claimed

    def _trims(self, finished: Sequence[Outcome]) -> dict[tuple[str, str], int]:
        """Which (queue, state) to trim back to their newest ``keep`` finished jobs now.

        A trim steps over the rows it keeps, so each runs once per ``keep // 10``
        finishes of its (queue, state) in this process, not per batch: a queue
        holds at most ``keep + keep // 10`` such jobs per process at any moment.
        """
        limits: dict[tuple[str, str], int] = {}
        for outcome in finished:
            if outcome.keep is not None:
                key = (outcome.queue, outcome.state.value)
                limits[key] = min(limits.get(key, outcome.keep), outcome.keep)
                self.untrimmed[key] = self.untrimmed.get(key, 0) + 1
        due = {}
        for key, keep in limits.items():
            if self.untrimmed[key] >= max(1, keep // 10):
                self.untrimmed[key] = 0
                due[key] = keep
        return due

    async def wait_for_work(self, queues: Sequence[str], poll_interval: float) -> None:
        self.listener.start()
        if self.work.version != self.seen_work.get(tuple(queues), self.work.version):
            return  # a queue was notified since the last claim began: look again now
        timeout = IDLE_WAIT_SECONDS if self.listener.connected.is_set() else poll_interval
        if self.next_due is not None:
            timeout = min(timeout, max(0.001, (self.next_due - self.clock.now_ms()) / 1000))
        woken = asyncio.Event()
        self.work.watch(woken, queues)
        try:
            await self.clock.sleep_or_wake(woken, timeout)
        finally:
            self.work.forget(woken)


def _error_keys(outcome: Outcome) -> str:
    """The index keys of a failing outcome's error, one a line ('' for any other outcome)."""
    if outcome.state is not JobState.FAILED:
        return ""
    return joined_keys(error_keys(outcome.error))
