"""Leases in the PostgreSQL job store: renewals, releases, progress, stalls and expiry.

Renewals and lease checks are one statement each over all leases (``unnest``);
releases, progress and the stall sweep are one call of their function in
``sql/functions/leases.sql``, each one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.base import (
    EVENTS_KEPT,
    STALLED_ERROR,
    LeaseStatus,
    ProgressUpdate,
    StalledJob,
    stalled_error,
)
from conveyor.stores.notify import Notifier
from conveyor.stores.postgres.connection import PostgresConnection, Record
from conveyor.stores.search import error_keys, joined_keys

PURGE_BATCH = 1_000
"""Finished jobs deleted per statement, so no purge holds its locks for long."""

_RENEW = (
    "UPDATE {schema}.jobs j SET lease_until = $3"
    " FROM unnest($1::text[], $2::text[]) AS l (id, token)"
    # By primary key, never through jobs_leases: exchange.sql, note (1).
    " WHERE j.id = l.id AND j.token = l.token AND j.state = (SELECT 'active')"
    " RETURNING j.id, j.cancel_requested"
)
_RELEASE = "SELECT {schema}.release($1::text[], $2::text[], $3::bigint, $4::bigint)"
_PROGRESS = (
    "SELECT * FROM {schema}.progress($1::text[], $2::text[], $3::bytea[], $4::text[],"
    " $5::bigint[], $6::text[], $7::integer, $8::bigint)"
)
_CHECK = "SELECT id, token, state, cancel_requested FROM {schema}.jobs WHERE id = ANY ($1::text[])"
_SWEEP = "SELECT * FROM {schema}.sweep_stalled($1::bigint, $2::bigint, $3::text, $4::text)"
_STALLED_KEYS = joined_keys(error_keys(stalled_error(2)))
"""The index keys of a job failed by the sweep (its stall count is no word)."""
_FOLD_COUNTS = "SELECT {schema}.fold_counts()"
_TRIM_EVENTS = (
    "DELETE FROM {schema}.job_events WHERE seq <= (SELECT max(seq) FROM {schema}.job_events) - $1"
)
_PURGE = (
    "DELETE FROM {schema}.jobs WHERE id IN (SELECT id FROM {schema}.jobs"
    " WHERE expires_at <= $1 AND finished_at IS NOT NULL LIMIT $2)"
)


class PostgresLeases:
    """The lease steps of :class:`~conveyor.stores.postgres.jobs.PostgresJobStore`."""

    db: PostgresConnection
    clock: Clock
    notifier: Notifier
    progress_order: asyncio.Lock
    """Progress writes of this process apply in the order they were asked for."""

    async def renew(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> dict[str, LeaseStatus]:
        until = self.clock.now_ms() + lease_ms
        rows = await self.db.fetch(
            _RENEW, [job_id for job_id, _ in leases], [token for _, token in leases], until
        )
        return _statuses(
            [job_id for job_id, _ in leases], {r["id"]: r["cancel_requested"] for r in rows}
        )

    async def release(self, leases: Sequence[tuple[str, str]], keep_ms: int) -> int:
        released: int = await self.db.fetchval(
            _RELEASE,
            [job_id for job_id, _ in leases],
            [token for _, token in leases],
            self.clock.now_ms(),
            keep_ms,
        )
        self.notifier.notify()
        return released

    async def update_progress(
        self, updates: Sequence[ProgressUpdate], max_log_lines: int
    ) -> dict[str, LeaseStatus]:
        logs = [(u.id, log.at, _text(log.line)) for u in updates for log in u.logs]
        # The worker's periodic flush and a finishing job's last flush may be in flight at
        # once, on two pooled connections; taken in turn, an older value never lands last.
        async with self.progress_order:
            row = await self._write_progress(updates, logs, max_log_lines)
        self.notifier.notify()
        statuses = dict.fromkeys(row["cancel"] or [], LeaseStatus.CANCEL)
        statuses.update(dict.fromkeys(row["lost"] or [], LeaseStatus.LOST))
        return statuses

    async def _write_progress(
        self,
        updates: Sequence[ProgressUpdate],
        logs: list[tuple[str, int, str]],
        max_log_lines: int,
    ) -> Record:
        row = await self.db.fetchrow(
            _PROGRESS,
            [u.id for u in updates],
            [u.token for u in updates],
            [u.progress for u in updates],
            [job_id for job_id, _, _ in logs],
            [at for _, at, _ in logs],
            [line for _, _, line in logs],
            max_log_lines,
            self.clock.now_ms(),
        )
        assert row is not None
        return row

    async def check_leases(self, leases: Sequence[tuple[str, str]]) -> dict[str, LeaseStatus]:
        """One read of every lease (no lock taken)."""
        wanted = dict(leases)
        rows = await self.db.fetch(_CHECK, list(wanted))
        held = {
            r["id"]: r["cancel_requested"]
            for r in rows
            if r["token"] == wanted[r["id"]] and r["state"] == "active"
        }
        return _statuses(list(wanted), held)

    async def sweep_stalled(
        self, now: int, keep_failed_ms: int, exclusive_ms: int = 0
    ) -> list[StalledJob]:
        rows = await self.db.fetch(
            _SWEEP, now, keep_failed_ms, STALLED_ERROR.decode(), _STALLED_KEYS
        )
        if rows:
            self.notifier.notify()
        return [StalledJob(r["id"], r["queue"], r["task"], r["failed"]) for r in rows]

    async def purge_expired(self, now: int) -> int:
        """Delete in batches of short transactions, never holding many row locks for long."""
        await self.db.execute(_TRIM_EVENTS, EVENTS_KEPT)  # keep the newest EVENTS_KEPT events
        await self.db.execute(_FOLD_COUNTS)  # job_count_moves stays small though none reads
        purged = 0
        while True:
            status = await self.db.execute(_PURGE, now, PURGE_BATCH)
            deleted = int(status.split()[-1])
            purged += deleted
            if deleted < PURGE_BATCH:
                return purged


def _statuses(job_ids: Sequence[str], held: dict[str, bool]) -> dict[str, LeaseStatus]:
    """LOST for the ids not ``held``, CANCEL for those held whose cancellation was asked."""
    statuses: dict[str, LeaseStatus] = {}
    for job_id in job_ids:
        cancel = held.get(job_id)
        if cancel is None:
            statuses[job_id] = LeaseStatus.LOST
        elif cancel:
            statuses[job_id] = LeaseStatus.CANCEL
    return statuses


def _text(line: str) -> str:
    """A log line as PostgreSQL text can hold it (a NUL character becomes U+FFFD)."""
    return line.replace("\x00", "\ufffd") if "\x00" in line else line
