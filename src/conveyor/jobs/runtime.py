"""What the job engine needs of the application it runs in.

Tasks, clients, workers, schedules and flows are written against
:class:`Runtime`, not against ``conveyor.app.Conveyor`` (which satisfies it),
so the engine never imports the app that assembles it: the app sits above
``conveyor.jobs`` and ``conveyor.events``, and nothing below it names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from conveyor.clock import Clock
    from conveyor.config import Settings
    from conveyor.jobs.client import JobClient
    from conveyor.jobs.flows import FlowClient
    from conveyor.jobs.options import Call
    from conveyor.jobs.retention import RetentionRules
    from conveyor.jobs.schedule import ScheduleClient
    from conveyor.jobs.sync_job import SyncJob
    from conveyor.jobs.task import Task
    from conveyor.jobs.worker import Worker
    from conveyor.observability.history import HistoryClient
    from conveyor.observability.metrics import Metrics
    from conveyor.stores.backend import Backend
    from conveyor.stores.base import JobStore


class SyncEnqueuer(Protocol):
    """The sync facade, as tasks use it (``task.enqueue_sync``)."""

    def enqueue_many(self, calls: Iterable[Call[Any]]) -> list[SyncJob[Any]]: ...


class Runtime(Protocol):
    """The application the job engine runs in: its settings, clock, stores and parts."""

    settings: Settings
    clock: Clock
    backend: Backend
    metrics: Metrics
    history: HistoryClient
    retention: RetentionRules
    tasks: dict[str, Task[Any, Any]]
    """Every registered task by name."""
    workers: list[Worker]
    """Workers running in this process."""
    jobs: JobClient
    flows: FlowClient
    schedules: ScheduleClient

    @property
    def store(self) -> JobStore: ...

    @property
    def sync(self) -> SyncEnqueuer: ...

    async def open(self) -> None:
        """Connect the stores (idempotent)."""
        ...

    def queue_names(self) -> list[str]:
        """The queues of the registered tasks."""
        ...

    async def declare_for_workers(self) -> None:
        """Record in the store what this process's workers bring (event subscriptions),
        so producers elsewhere learn of it; called when a worker starts."""
        ...
