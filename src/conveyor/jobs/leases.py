"""Keeping a worker's leases: renewals, the progress flush, and stopping what was lost.

Two loops per worker: every third of the lease one call renews every held
lease; every ``progress_flush_interval`` (or at once when a cancel is asked
in this process) one call writes buffered progress and log lines and one
read checks the other leases. Each answer names the leases that were lost
(the attempt is abandoned, its outcome dropped) or whose job is to be
cancelled (the attempt is cancelled and recorded as such). Jobs claimed
ahead (``prefetch.py``) are held too: renewed and checked like running ones,
and the worker tends them after every check (``after_check``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from conveyor.jobs.attempt import Running, stop_attempt
from conveyor.jobs.background import guard
from conveyor.stores.base import LeaseStatus

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime


class LeaseKeeper:
    """Renews and checks the leases of ``running`` (a worker's held jobs, by id)."""

    def __init__(
        self,
        app: Runtime,
        running: dict[str, Running],
        check_now: asyncio.Event,
        ahead: dict[str, Running] | None = None,
        after_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.running = running
        self.ahead: dict[str, Running] = {} if ahead is None else ahead
        """Jobs claimed ahead, not started yet (held under lease all the same)."""
        self.after_check = after_check
        self.check_now = check_now
        """Set to flush and check at once (a cancel asked in this process; stopping)."""
        self.lease_ms = int(app.settings.lease_seconds * 1000)

    async def renew_loop(self, halt: asyncio.Event) -> None:
        interval = self.app.settings.lease_seconds / 3
        while not halt.is_set():
            await self.app.clock.sleep_or_wake(halt, interval)
            if not halt.is_set():
                await guard(self.renew)

    def held(self) -> Iterator[Running]:
        """Every job this worker holds a lease on: running, then claimed ahead."""
        return itertools.chain(self.running.values(), self.ahead.values())

    async def renew(self) -> None:
        held = [(r.job.id, r.job.token) for r in self.held()]
        if held:
            self.apply(await self.app.store.renew(held, self.lease_ms), dict(held))

    async def flush_loop(self, halt: asyncio.Event) -> None:
        """Every ``progress_flush_interval``, or at once when :attr:`check_now` is set."""
        interval = self.app.settings.progress_flush_interval
        while not halt.is_set():
            await self.app.clock.sleep_or_wake(self.check_now, interval)
            self.check_now.clear()
            if not halt.is_set():
                await guard(self.flush_progress)
                if self.after_check is not None:
                    await guard(self.after_check)

    async def flush_progress(self) -> None:
        """Write progress of the jobs that have some; check the leases of the others.

        Both calls answer which leases were lost or are to cancel, so a
        cancellation asked from anywhere is seen within one interval.
        """
        store = self.app.store
        updates = [r.ctx.take_update() for r in self.running.values() if r.ctx.dirty]
        if updates:
            statuses = await store.update_progress(updates, self.app.settings.max_log_lines)
            self.apply(statuses, {u.id: u.token for u in updates})
        written = {u.id for u in updates}
        quiet = [(r.job.id, r.job.token) for r in self.held() if r.job.id not in written]
        if quiet:
            self.apply(await store.check_leases(quiet), dict(quiet))

    def apply(self, statuses: dict[str, LeaseStatus], tokens: dict[str, str]) -> None:
        """Stop attempts whose lease was lost or whose job is to be cancelled.

        ``tokens`` are the tokens the call was made with: if this worker has
        claimed the job again meanwhile, the answer is about the old attempt.
        """
        for job_id, status in statuses.items():
            running = self.running.get(job_id) or self.ahead.get(job_id)
            if running is not None and running.job.token == tokens.get(job_id):
                stop_attempt(running, "lost" if status is LeaseStatus.LOST else "cancel")
