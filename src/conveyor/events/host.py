"""What the event bus needs of the application it runs in (``Conveyor`` is one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.jobs.runtime import Runtime, SyncEnqueuer

if TYPE_CHECKING:
    from conveyor.events.envelope import EventMeta
    from conveyor.jobs.retry import BackoffLike, Retention
    from conveyor.jobs.task import Task


class SyncPublisher(SyncEnqueuer, Protocol):
    """The sync facade, as ``publish_sync`` uses it."""

    def publish(self, events: Iterable[object], **options: Any) -> list[EventMeta]: ...


class EventHost(Runtime, Protocol):
    """The job engine's runtime, plus registering delivery tasks and the sync facade."""

    @property
    def sync(self) -> SyncPublisher: ...

    def register_task(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = ...,
        queue: str = ...,
        retries: int = ...,
        backoff: BackoffLike | None = ...,
        timeout: float | None = ...,
        retention: Retention | None = ...,
        max_stalled: int | None = ...,
    ) -> Task[Any, Any]:
        """Register ``fn`` as a task (``app.task`` without the decorator)."""
        ...
