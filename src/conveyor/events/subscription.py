"""A subscription: one group's handler for one event type, run as a task.

The handler is wrapped in a task named ``events.<group>:<type>`` on the
group's queue ``events.<group>``. The job engine then gives it everything a
delivery needs: leases and stall recovery, retries with backoff, the failed
state as the dead-letter queue and retry-from-failed as replay.

A delivery carries one event, or with ``batch`` up to that many (the
handler then takes a list); either kind is handled whatever the current
mode, so changing it never strands deliveries already queued.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from conveyor.clock import Clock
from conveyor.errors import NonRetryableError, ProgrammingError
from conveyor.events.envelope import Envelope, EventMeta, current_delivery, from_data
from conveyor.events.publisher import Route
from conveyor.jobs.context import current_job
from conveyor.jobs.outcome import OutcomeKind

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
        batch: int,
        idempotent: bool,
        remember_for: float,
        store: Callable[[], EventStore],
        metrics: EventMetrics,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self.group = group
        self.type_name = type_name
        self.event_cls = event_cls
        self.handler = handler
        self.batch = batch
        self.route = Route(batch=batch)
        """How this group takes the type, as recorded for publishers (set when registered)."""
        self.is_async = inspect.iscoroutinefunction(handler)
        self.wants_meta = _wants_meta(handler)
        self.idempotent = idempotent
        self.remember_ms = int(remember_for * 1000)
        self._store = store
        self.skipped = 0
        """Events skipped in this process because the group had processed them."""
        labels = (group, type_name)
        self._delivered = metrics.delivered.labels(*labels)
        self._retried = metrics.retried.labels(*labels)
        self._dead = metrics.dead_lettered.labels(*labels)
        self._duration = metrics.duration.labels(*labels)

    async def deliver(self, payload: Any) -> None:
        """The task function: rebuild the events, skip processed ones, run the handler."""
        attempt = current_job().attempt
        metas: list[EventMeta] = []
        events: list[Any] = []
        for envelope in payload if isinstance(payload, list) else [payload]:
            try:
                wire = msgspec.convert(envelope, Envelope)
            except msgspec.ValidationError as exc:
                raise NonRetryableError(f"not an event envelope: {exc}") from None
            metas.append(wire.meta(attempt=attempt, group=self.group))
            events.append(from_data(self.event_cls, wire.data))
        if self.idempotent:
            metas, events = await self._unprocessed(metas, events)
            if not events:
                return
        _bind_log_fields(metas)
        if self.batch:
            token = current_delivery.set(metas[0])
            try:
                await self._call(events, metas)
            finally:
                current_delivery.reset(token)
        else:
            for event, meta in zip(events, metas, strict=True):
                token = current_delivery.set(meta)
                try:
                    await self._call(event, meta)
                finally:
                    current_delivery.reset(token)
        if self.idempotent:
            now = self._clock.now_ms()
            await self._store().mark_processed(
                self.group, [m.event_id for m in metas], now + self.remember_ms, now
            )

    async def _call(self, event: Any, meta: Any) -> None:
        args = (event, meta) if self.wants_meta else (event,)
        if self.is_async:
            await self.handler(*args)
        else:  # to_thread copies the context: current_job() and log fields work there
            await asyncio.to_thread(self.handler, *args)

    async def _unprocessed(
        self, metas: list[EventMeta], events: list[Any]
    ) -> tuple[list[EventMeta], list[Any]]:
        done = await self._store().processed(
            self.group, [m.event_id for m in metas], self._clock.now_ms()
        )
        if not done:
            return metas, events
        self.skipped += len(done)
        kept = [i for i, meta in enumerate(metas) if meta.event_id not in done]
        return [metas[i] for i in kept], [events[i] for i in kept]

    def on_outcome(self, kind: str, run_s: float) -> None:
        """Count what the job engine decided about a delivery (the worker calls this)."""
        if kind == OutcomeKind.COMPLETED:
            self._delivered.inc()
        elif kind == OutcomeKind.RETRIED:
            self._retried.inc()
        elif kind == OutcomeKind.FAILED:
            self._dead.inc()
        self._duration.observe(run_s)


def _bind_log_fields(metas: list[EventMeta]) -> None:
    first = metas[0]
    fields: dict[str, Any] = {"event_id": first.event_id, "event_type": first.type}
    if len(metas) > 1:
        fields["events"] = len(metas)
    if first.trace_id is not None:
        fields["trace_id"] = first.trace_id
    if first.request_id is not None:
        fields["request_id"] = first.request_id
    structlog.contextvars.bind_contextvars(**fields)


def _wants_meta(handler: Callable[..., Any]) -> bool:
    """A handler takes ``(event)`` or ``(event, meta)`` (lists of them with ``batch``)."""
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
