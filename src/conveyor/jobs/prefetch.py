"""Claiming ahead: jobs a worker holds under lease before a slot is free for them.

A worker that runs few jobs at once would otherwise wait a store round trip
between one job and the next. So a worker at concurrency C <= ``PREFETCH_UP_TO``
claims up to C jobs more than it has free slots: when a job ends, the next one
starts at once, and the exchange that acknowledges the first claims the
following ones while it runs. Above that concurrency a round trip carries many
jobs and the slots keep each other busy, so nothing is claimed ahead.

Claiming ahead pays only while there is a backlog: a claim that finds fewer
jobs than it asked for stops it until one of the worker's jobs ends, so jobs
that arrive one by one go to idle workers first.

A job held ahead is leased like a running one (renewed, its lease checked
every flush, so a cancel or a lost lease is seen), and given back to the store
(released: waiting again, its attempt not counted, first in line) if it has
waited ``prefetch_max_wait`` seconds without a free slot (a long job ahead of
it must not keep it from an idle worker), or at once when the worker stops.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from conveyor.jobs import outcome as outcomes
from conveyor.jobs.attempt import Running
from conveyor.observability.logging import get_logger
from conveyor.stores.base import Outcome

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime

log = get_logger("conveyor.worker")

PREFETCH_UP_TO = 4
"""The highest concurrency at which a worker claims ahead (as many jobs as it runs)."""

Settled = tuple[Outcome, str, Running, float]
"""An outcome for the worker to send: the outcome, its kind, the job, run seconds (0)."""


def prefetch_for(concurrency: int, max_wait: float) -> int:
    """How many jobs a worker of ``concurrency`` holds ahead (0: ``prefetch_max_wait`` is 0)."""
    return PREFETCH_UP_TO if concurrency <= PREFETCH_UP_TO and max_wait > 0 else 0


class ClaimedAhead:
    """The jobs one worker claimed ahead, oldest first."""

    def __init__(self, app: Runtime, limit: int) -> None:
        self.app = app
        self.limit = limit
        """How many jobs may wait here."""
        self.paused = False
        """Claim none ahead until one of the worker's jobs ends: set when a claim found
        fewer jobs than it asked for (no backlog: new jobs are for idle workers first), and
        when held jobs waited too long and went back (else they would be claimed again)."""
        self.jobs: dict[str, Running] = {}
        """Held jobs by id, in claim order (the lease keeper renews and checks them)."""
        self._since: dict[str, float] = {}
        self._settled: list[Running] = []
        """Held jobs taken out with a cancel or a lost lease, for ``settle``."""

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def room(self) -> int:
        """How many more jobs the worker may claim ahead now."""
        return 0 if self.paused else self.limit - len(self.jobs)

    def add(self, running: Running) -> None:
        self.jobs[running.job.id] = running
        self._since[running.job.id] = time.monotonic()

    def take(self) -> Running | None:
        """The oldest held job whose lease still stands and that is not to be cancelled."""
        while self.jobs:
            running = self._pop(next(iter(self.jobs)))
            if running.stop_reason is None:
                return running
            self._settled.append(running)
        return None

    def settle(self) -> list[Settled]:
        """Outcomes for held jobs that the store asked to cancel (recorded cancelled
        without running); held jobs whose lease was lost are dropped."""
        for running in [r for r in self.jobs.values() if r.stop_reason is not None]:
            self._settled.append(self._pop(running.job.id))
        found, self._settled = self._settled, []
        settled = []
        for running in found:
            if running.stop_reason != "cancel":
                log.warning("lease of a job held ahead was lost", job_id=running.job.id)
                continue
            job = running.job
            retention = self.app.retention.of_job(job.queue, job.task)
            outcome = outcomes.cancelled(job, self.app.clock.now_ms(), retention)
            settled.append((outcome, outcomes.OutcomeKind.CANCELLED, running, 0.0))
        return settled

    async def give_back(self, *, waited: float = 0.0) -> int:
        """Release the held jobs that have waited ``waited`` seconds or more (0: all)."""
        now = time.monotonic()
        stale = [i for i, since in self._since.items() if now - since >= waited]
        if not stale:
            return 0
        held = [self._pop(job_id) for job_id in stale]
        self.paused = self.paused or waited > 0
        released = await release(self.app, held)
        log.info("gave back jobs held ahead", count=len(held), waited=waited)
        return released

    def _pop(self, job_id: str) -> Running:
        self._since.pop(job_id, None)
        return self.jobs.pop(job_id)


async def release(app: Runtime, held: Iterable[Running]) -> int:
    """Give ``held`` jobs back to the store: waiting again, the attempt not counted (a
    job asked to cancel ends cancelled instead, kept as its retention says)."""
    by_keep: dict[int, list[tuple[str, str]]] = {}
    for running in held:
        keep_ms = app.retention.keep_failed_ms(running.job.queue, running.job.task)
        by_keep.setdefault(keep_ms, []).append((running.job.id, running.job.token))
    released = 0
    for keep_ms, leases in by_keep.items():
        released += await app.store.release(leases, keep_ms)
    return released
