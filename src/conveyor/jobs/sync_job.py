"""Job handles for sync code, and the private event loop that serves them.

The sync facade (``app.sync``, ``task.enqueue_sync``) runs the async API on
a :class:`LoopThread` and wraps each job in a :class:`SyncJob`, whose
actions block until done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from conveyor.errors import ProgrammingError
from conveyor.jobs.job import Job, JobError
from conveyor.stores.base import CancelResult, JobState, LogLine

R = TypeVar("R")
T = TypeVar("T")


class LoopThread:
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

    def __init__(self, runner: LoopThread, job: Job[R]) -> None:
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
