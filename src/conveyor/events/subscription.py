"""A subscription: one group's handler for one event type, run as a task.

The handler is wrapped in a task named ``events.<group>:<type>`` on the
group's queue ``events.<group>``. The job engine then gives it everything a
delivery needs: leases and stall recovery, retries with backoff, the failed
state as the dead-letter queue and retry-from-failed as replay.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from conveyor.errors import NonRetryableError, ProgrammingError
from conveyor.events.envelope import Envelope, current_delivery, from_data
from conveyor.jobs.context import current_job
from conveyor.jobs.outcome import OutcomeKind
from conveyor.stores.base import now_ms

if TYPE_CHECKING:
    from conveyor.events.metrics import EventMetrics
    from conveyor.stores.events import EventStore


class Subscription:
    """``group`` handles events of ``type_name`` (class ``event_cls``) with ``handler``."""

    def __init__(
        self,
        *,
        group: str,
        type_name: str,
        event_cls: type[Any],
        handler: Callable[..., Any],
        idempotent: bool,
        remember_for: float,
        store: Callable[[], EventStore],
        metrics: EventMetrics,
    ) -> None:
        self.group = group
        self.type_name = type_name
        self.event_cls = event_cls
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.wants_meta = _wants_meta(handler)
        self.idempotent = idempotent
        self.remember_ms = int(remember_for * 1000)
        self._store = store
        self.skipped = 0
        """Deliveries skipped in this process because the group had processed the event."""
        labels = (group, type_name)
        self._delivered = metrics.delivered.labels(*labels)
        self._retried = metrics.retried.labels(*labels)
        self._dead = metrics.dead_lettered.labels(*labels)
        self._duration = metrics.duration.labels(*labels)

    async def deliver(self, envelope: dict[str, Any]) -> None:
        """The task function: rebuild the event, skip it if processed, run the handler."""
        try:
            wire = msgspec.convert(envelope, Envelope)
        except msgspec.ValidationError as exc:
            raise NonRetryableError(f"not an event envelope: {exc}") from None
        meta = wire.meta(attempt=current_job().attempt, group=self.group)
        event = from_data(self.event_cls, wire.data)
        if self.idempotent and await self._store().is_processed(
            self.group, meta.event_id, now_ms()
        ):
            self.skipped += 1
            return
        fields = {"event_id": meta.event_id, "event_type": meta.type}
        if meta.trace_id is not None:
            fields["trace_id"] = meta.trace_id
        if meta.request_id is not None:
            fields["request_id"] = meta.request_id
        structlog.contextvars.bind_contextvars(**fields)
        token = current_delivery.set(meta)
        try:
            args = (event, meta) if self.wants_meta else (event,)
            if self.is_async:
                await self.handler(*args)
            else:  # to_thread copies the context: current_job() and log fields work there
                await asyncio.to_thread(self.handler, *args)
        finally:
            current_delivery.reset(token)
        if self.idempotent:
            now = now_ms()
            await self._store().mark_processed(
                self.group, meta.event_id, now + self.remember_ms, now
            )

    def on_outcome(self, kind: str, run_s: float) -> None:
        """Count what the job engine decided about an attempt (the worker calls this)."""
        if kind == OutcomeKind.COMPLETED:
            self._delivered.inc()
        elif kind == OutcomeKind.RETRIED:
            self._retried.inc()
        elif kind == OutcomeKind.FAILED:
            self._dead.inc()
        self._duration.observe(run_s)


def _wants_meta(handler: Callable[..., Any]) -> bool:
    """A handler takes ``(event)`` or ``(event, meta)``."""
    params = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) not in (1, 2):
        raise ProgrammingError(
            f"event handler {handler.__qualname__} must take (event) or (event, meta)"
        )
    return len(params) == 2
