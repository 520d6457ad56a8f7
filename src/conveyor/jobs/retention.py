"""Which retention applies to a finished job: its task's, else its queue's, else the app's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.config import Settings
from conveyor.jobs.retry import Retention

if TYPE_CHECKING:
    from conveyor.jobs.task import Task


class RetentionRules:
    """Retention per queue over the app's settings; shared by every client of an app."""

    def __init__(
        self, settings: Settings, tasks: Mapping[str, Task[Any, Any]] | None = None
    ) -> None:
        self._tasks: Mapping[str, Task[Any, Any]] = {} if tasks is None else tasks
        """The app's task registry (read, never copied: tasks register later)."""
        self._default = Retention(
            settings.keep_completed,
            settings.keep_completed_seconds,
            settings.keep_failed,
            settings.keep_failed_seconds,
        )
        self._by_queue: dict[str, Retention] = {}
        self._resolved: dict[tuple[str, Retention | None], Retention] = {}

    def set(self, queue: str, retention: Retention) -> None:
        """Retention for every task of ``queue`` that does not set its own."""
        self._by_queue[queue] = retention
        self._resolved.clear()

    def resolve(self, queue: str, task_retention: Retention | None) -> Retention:
        """The whole retention of a job of ``queue`` whose task sets ``task_retention``."""
        key = (queue, task_retention)
        found = self._resolved.get(key)
        if found is None:
            base = self._default
            queue_retention = self._by_queue.get(queue)
            if queue_retention is not None:
                base = queue_retention.over(base)
            found = base if task_retention is None else task_retention.over(base)
            self._resolved[key] = found
        return found

    def of_job(self, queue: str, task_name: str) -> Retention:
        """The retention of a job of the task named ``task_name`` on ``queue``."""
        task = self._tasks.get(task_name)
        return self.resolve(queue, None if task is None else task.retention)

    def keep_failed_ms(self, queue: str, task_name: str) -> int:
        """How long such a job is kept once it failed or was cancelled, in ms."""
        return int((self.of_job(queue, task_name).failed_for or 0) * 1000)
