"""The sync facade: enqueue and read jobs from Django, Flask or a script.

A private event loop runs in a daemon thread with its own store connection;
each sync call runs the async implementation there and blocks until it is
done. The same code paths as the async API run, so behaviour is identical.

>>> job = export_report.enqueue_sync(7, fmt="xlsx")
>>> app.sync.get(job.id).status
<JobState.WAITING: 'waiting'>
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from conveyor.errors import ProgrammingError
from conveyor.jobs.client import Call, JobClient
from conveyor.jobs.job import Job, JobError
from conveyor.stores.base import CancelResult, JobState, LogLine, QueueInfo

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.events.envelope import EventMeta
    from conveyor.events.publisher import Publisher
    from conveyor.stores.backend import Backend

R = TypeVar("R")
T = TypeVar("T")


class _LoopThread:
    """An event loop in a daemon thread (never holds the interpreter open at exit)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="conveyor-sync", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise ProgrammingError("the sync facade cannot be called from its own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class SyncJob(Generic[R]):
    """A :class:`Job` for sync code; actions block until done."""

    __slots__ = ("_job", "_runner")

    def __init__(self, runner: _LoopThread, job: Job[R]) -> None:
        self._runner = runner
        self._job = job

    def __repr__(self) -> str:
        return repr(self._job)

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def status(self) -> JobState:
        return self._job.status

    @property
    def attempts(self) -> int:
        return self._job.attempts

    @property
    def progress(self) -> Any:
        return self._job.progress

    @property
    def result(self) -> R | None:
        return self._job.result

    @property
    def error(self) -> JobError | None:
        return self._job.error

    def to_dict(self) -> dict[str, Any]:
        return self._job.to_dict()

    def refresh(self) -> SyncJob[R]:
        self._runner.call(self._job.refresh())
        return self

    def wait(self, timeout: float | None = None) -> R:
        return self._runner.call(self._job.wait(timeout))

    def cancel(self) -> CancelResult:
        return self._runner.call(self._job.cancel())

    def logs(self) -> list[LogLine]:
        return self._runner.call(self._job.logs())


class SyncClient:
    """``app.sync``: the blocking twin of ``app.jobs``."""

    def __init__(self, app: Conveyor) -> None:
        self._app = app
        self._runner: _LoopThread | None = None
        self._client: JobClient | None = None
        self._publisher: Publisher | None = None
        self._backend: Backend | None = None
        self._opened = False
        self._lock = threading.Lock()

    def _ready(self) -> tuple[_LoopThread, JobClient]:
        with self._lock:
            if self._runner is None or self._client is None:
                app = self._app
                # Connections of its own for the facade's loop (a memory backend is shared).
                self._backend = app.backend.twin()
                client = JobClient(app.settings, self._backend, self._open, app.retention)
                self._runner, self._client = _LoopThread(), client
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
