"""A worker's maintenance, every ``sweep_interval``: stalls, expiry, heartbeat, flow repair.

Stalled jobs (their lease expired: their worker died or hung) go back to
waiting, or fail past ``max_stalled``; finished jobs past their retention
are purged, and metrics history older than ``history_days``; the worker
heartbeats (so ``app.jobs.workers()`` and health see it, with the ids of
the jobs it runs); on Redis, flow results a crash left undelivered reach
their parents. With many workers on one store, one sweep per interval does
the work (``exclusive_ms``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import itertools
import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from conveyor.jobs.background import guard
from conveyor.observability.logging import get_logger
from conveyor.stores.base import RUNNING_SHOWN, WorkerInfo

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime

log = get_logger("conveyor.worker")


class Maintenance:
    """The maintenance loop of the worker ``info`` describes."""

    def __init__(
        self,
        app: Runtime,
        info: WorkerInfo,
        on_beat: Callable[[], None],
        running: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.app = app
        self.info = info
        self.on_beat = on_beat
        """Called after each heartbeat the store took (the worker's health reads it)."""
        self.running = running
        """The ids of the jobs the worker holds, for its heartbeat."""

    async def loop(self, halt: asyncio.Event) -> None:
        interval = self.app.settings.sweep_interval
        while not halt.is_set():
            await guard(self.step)
            await self.app.clock.sleep_or_wake(halt, interval)

    async def step(self) -> None:
        app, s = self.app, self.app.settings
        now = app.clock.now_ms()
        keep_ms = int(s.keep_failed_seconds * 1000)
        exclusive_ms = int(s.sweep_interval * 900)  # one worker per interval sweeps a shared store
        for stalled in await app.store.sweep_stalled(now, keep_ms, exclusive_ms):
            series = app.metrics.jobs.series(stalled.queue, stalled.task)
            series.stalled.inc()
            if stalled.failed:
                series.failed.inc()
            log.warning("job stalled", job_id=stalled.id, task=stalled.task, failed=stalled.failed)
        await app.store.purge_expired(now)
        await app.history.trim()
        self.info.seen_at = now
        self.info.running = list(itertools.islice(self.running(), RUNNING_SHOWN))
        await app.store.heartbeat(self.info, int(s.sweep_interval * 3000))
        self.on_beat()
        await app.flows.store.repair(now)


def worker_info(worker_id: str, queues: list[str], concurrency: int, started_at: int) -> WorkerInfo:
    """What a worker's heartbeat says of it."""
    return WorkerInfo(
        worker_id,
        socket.gethostname(),
        os.getpid(),
        queues,
        concurrency,
        started_at,
        started_at,
        version=_version(),
    )


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("conveyor")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"
