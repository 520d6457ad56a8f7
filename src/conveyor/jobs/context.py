"""What a running task knows about its job: ``conveyor.current_job()``.

Progress and log lines are buffered here and written by the worker in
batches (one store call for all dirty jobs every ``progress_flush_interval``),
so reporting progress from a tight loop costs no round trip.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from conveyor import serialization
from conveyor.errors import JobCancelledError, ProgrammingError
from conveyor.stores.base import LogLine, ProgressUpdate

if TYPE_CHECKING:
    from conveyor.jobs.flows import ChildResult

_current: ContextVar[JobContext | None] = ContextVar("conveyor_job", default=None)


class JobContext:
    """The running job, as seen from inside its task function."""

    __slots__ = (
        "_dirty",
        "_limit",
        "_lock",
        "_logs",
        "_progress",
        "attempt",
        "cancelled",
        "children",
        "fence",
        "job_id",
        "queue",
        "task",
        "token",
    )

    def __init__(
        self,
        job_id: str,
        task: str,
        queue: str,
        attempt: int,
        token: str,
        limit: int,
        fence: int = 0,
    ) -> None:
        self.job_id = job_id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        """1 on the first attempt, 2 on the first retry, ..."""
        self.token = token
        self.fence = fence
        """The fencing token of this claim: greater than that of every earlier claim of
        this job (stalls, retries and releases included). Pass it to downstream writes
        and have them reject a value lower than the highest they saw, so an attempt
        that lost its lease cannot overwrite the work of the one that replaced it."""
        self.cancelled = False
        """True once someone asked to cancel this job (or its lease was lost)."""
        self.children: list[ChildResult] = []
        """A flow parent's children, in the order given, each with its result or error
        (``app.flows``); empty for a job that is not a flow's parent."""
        self._limit = limit
        self._progress: bytes | None = None
        self._logs: list[LogLine] = []
        self._dirty = False
        # Sync tasks report from their thread while the worker takes updates on the loop.
        self._lock = threading.Lock()

    def set_progress(self, value: Any) -> None:
        """Report progress: a number (0-100 by convention) or any JSON value."""
        encoded = serialization.dumps(value, what="progress", limit=self._limit)
        with self._lock:
            self._progress = encoded
            self._dirty = True

    def log(self, message: str) -> None:
        """Append a line to the job's log (the newest ``max_log_lines`` are kept)."""
        line = LogLine(time.time_ns() // 1_000_000, serialization.clip(message, self._limit))
        with self._lock:
            self._logs.append(line)
            self._dirty = True

    def children_results(self) -> list[Any]:
        """The results of this flow parent's children that completed, in order."""
        return [child.result for child in self.children if child.ok]

    def raise_if_cancelled(self) -> None:
        """Stop a long sync task cooperatively: raises once the job is cancelled."""
        if self.cancelled:
            raise JobCancelledError(f"job {self.job_id} was cancelled")

    @property
    def dirty(self) -> bool:
        return self._dirty

    def take_update(self) -> ProgressUpdate:
        """Hand the buffered progress and logs to the worker's flusher."""
        with self._lock:
            update = ProgressUpdate(self.job_id, self.token, self._progress, self._logs)
            self._progress = None
            self._logs = []
            self._dirty = False
        return update


def current_job() -> JobContext:
    """The job this code runs in; raises ``ProgrammingError`` outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise ProgrammingError("current_job() was called outside a running conveyor task")
    return ctx
