"""The sync facade: enqueue and read jobs from Django, Flask or a script.

A private event loop runs in a daemon thread with its own store connection;
each sync call runs the async implementation there and blocks until it is
done. The same code paths as the async API run, so behaviour is identical.

>>> job = export_report.enqueue_sync(7, fmt="xlsx")
>>> app.sync.get(job.id).status
<JobState.WAITING: 'waiting'>
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from conveyor.jobs.client import JobClient
from conveyor.jobs.options import Call
from conveyor.jobs.sync_job import LoopThread, SyncJob
from conveyor.stores.base import CancelResult, JobState, QueueInfo

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.events.bus import EventBus
    from conveyor.events.envelope import EventMeta
    from conveyor.events.publisher import Publisher
    from conveyor.jobs.retention import RetentionRules
    from conveyor.stores.backend import Backend

R = TypeVar("R")
T = TypeVar("T")


class SyncHost(Protocol):
    """What the sync facade needs of its app (``Conveyor`` is one)."""

    settings: Settings
    backend: Backend
    retention: RetentionRules

    @property
    def events(self) -> EventBus: ...


class SyncClient:
    """``app.sync``: the blocking twin of ``app.jobs``."""

    def __init__(self, app: SyncHost) -> None:
        self._app = app
        self._runner: LoopThread | None = None
        self._client: JobClient | None = None
        self._publisher: Publisher | None = None
        self._backend: Backend | None = None
        self._opened = False
        self._lock = threading.Lock()

    def _ready(self) -> tuple[LoopThread, JobClient]:
        with self._lock:
            if self._runner is None or self._client is None:
                app = self._app
                # Connections of its own for the facade's loop (a memory backend is shared).
                self._backend = app.backend.twin()
                client = JobClient(app.settings, self._backend, self._open, app.retention)
                self._runner, self._client = LoopThread(), client
            return self._runner, self._client

    async def _open(self) -> None:
        if not self._opened and self._backend is not None:
            await self._backend.open()
            self._opened = True

    def _call(self, coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
        runner, client = self._ready()
        return runner.call(coro_fn(client, *args, **kwargs))

    def enqueue_many(self, calls: Iterable[Call[Any]]) -> builtins.list[SyncJob[Any]]:
        runner, client = self._ready()
        jobs = runner.call(client.enqueue(list(calls)))
        return [SyncJob(runner, job) for job in jobs]

    def publish(self, events: Iterable[object], **options: Any) -> builtins.list[EventMeta]:
        """Publish events (``app.events.publish_many``) and block until they are stored."""
        runner, _ = self._ready()
        if self._publisher is None and self._backend is not None:
            backend = self._backend
            self._publisher = self._app.events.publisher_over(
                backend.jobs, backend.events, self._open
            )
        assert self._publisher is not None
        return runner.call(self._publisher.publish(list(events), **options))

    def get(self, job_id: str) -> SyncJob[Any]:
        runner, client = self._ready()
        return SyncJob(runner, runner.call(client.get(job_id)))

    def list(
        self, state: JobState | str, queue: str | None = None, *, offset: int = 0, limit: int = 50
    ) -> builtins.list[SyncJob[Any]]:
        runner, client = self._ready()
        jobs = runner.call(client.list(state, queue, offset=offset, limit=limit))
        return [SyncJob(runner, job) for job in jobs]

    def counts(self) -> dict[str, dict[JobState, int]]:
        result: dict[str, dict[JobState, int]] = self._call(JobClient.counts)
        return result

    def queues(self) -> builtins.list[QueueInfo]:
        result: builtins.list[QueueInfo] = self._call(JobClient.queues)
        return result

    def cancel(self, job_id: str) -> CancelResult:
        result: CancelResult = self._call(JobClient.cancel, job_id)
        return result

    def retry(self, job_id: str) -> SyncJob[Any]:
        runner, client = self._ready()
        return SyncJob(runner, runner.call(client.retry(job_id)))

    def remove(self, job_id: str) -> None:
        self._call(JobClient.remove, job_id)

    def pause(self, queue: str) -> None:
        self._call(JobClient.pause, queue)

    def resume(self, queue: str) -> None:
        self._call(JobClient.resume, queue)

    def clean(
        self, queue: str, state: JobState | str, older_than: float = 0.0, limit: int = 10_000
    ) -> int:
        result: int = self._call(JobClient.clean, queue, state, older_than, limit)
        return result

    def close(self) -> None:
        with self._lock:
            runner, backend = self._runner, self._backend
            self._runner = self._client = self._backend = None
            self._publisher = None
            self._opened = False
        if runner is None or backend is None:
            return
        if backend is not self._app.backend:
            runner.call(backend.close())
        runner.stop()
