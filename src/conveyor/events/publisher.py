"""Publishing: route an event to its groups and enqueue one delivery per group.

All deliveries of a publish call go to the job store in one step (one
transaction on SQLite, one MULTI/EXEC on a Redis server), so an event
reaches every subscribed group or none. A delivery's job id is
``<event_id>@<group>``: publishing the same event id again (an outbox relay
that crashed after publishing) adds nothing while the delivery is kept.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from conveyor import serialization
from conveyor.config import Settings
from conveyor.errors import BadInputError
from conveyor.events.envelope import (
    Envelope,
    EventMeta,
    delivery_task,
    group_queue,
    new_envelope,
)
from conveyor.events.metrics import EventMetrics
from conveyor.stores.base import JobStore, NewJob, now_ms
from conveyor.stores.events import EventStore

MAX_EVENT_ID_LENGTH = 100
_SAFE_ID = re.compile(r"[^\s{}@]+")


class Publisher:
    """Publishes through one store connection (the app's, or the sync facade's)."""

    def __init__(
        self,
        settings: Settings,
        jobs: JobStore,
        events: EventStore,
        local: Callable[[], dict[str, set[str]]],
        metrics: EventMetrics,
        opener: Callable[[], Awaitable[None]],
        wakeups: Iterable[asyncio.Event] = (),
    ) -> None:
        self.settings = settings
        self._jobs = jobs
        self._events = events
        self._local = local
        self._metrics = metrics
        self._open = opener
        self._wakeups = wakeups
        self._routes: dict[str, list[str]] = {}
        self._routes_at = float("-inf")

    def forget_routes(self) -> None:
        self._routes_at = float("-inf")

    async def routes(self) -> dict[str, list[str]]:
        """Event type -> subscribed groups: the store's record merged with this process's."""
        if time.monotonic() - self._routes_at > self.settings.event_route_ttl:
            merged: dict[str, set[str]] = {t: set(g) for t, g in self._local().items()}
            for group, types in (await self._events.groups()).items():
                for type_name in types:
                    merged.setdefault(type_name, set()).add(group)
            self._routes = {t: sorted(groups) for t, groups in merged.items()}
            self._routes_at = time.monotonic()
        return self._routes

    async def publish(
        self,
        events: Sequence[object],
        *,
        event_id: str | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> list[EventMeta]:
        if event_id is not None and len(events) != 1:
            raise BadInputError("event_id can only be given when publishing one event")
        now = now_ms()
        envelopes = [
            self.envelope(
                event, event_id=event_id, source=source, trace_id=trace_id, request_id=request_id
            )
            for event in events
        ]
        await self.publish_envelopes(envelopes, now)
        return [envelope.meta() for envelope in envelopes]

    def envelope(
        self,
        event: object,
        *,
        event_id: str | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> Envelope:
        """The envelope of one event: its type checked, its metadata stamped."""
        if event_id is not None and not _valid_id(event_id):
            raise BadInputError(
                f"event_id must be a string of 1..{MAX_EVENT_ID_LENGTH} characters without"
                " whitespace, braces or '@'"
            )
        return new_envelope(
            event,
            source=source or self.settings.event_source,
            event_id=event_id,
            trace_id=trace_id,
            request_id=request_id,
            now=now_ms(),
        )

    async def publish_envelopes(self, envelopes: Sequence[Envelope], now: int) -> None:
        """Enqueue the deliveries of ready-made envelopes in one store step."""
        await self._open()
        routes = await self.routes()
        jobs = [job for envelope in envelopes for job in self._deliveries(envelope, routes, now)]
        if jobs:
            await self._jobs.enqueue(jobs)
            for wakeup in self._wakeups:
                wakeup.set()
        for envelope in envelopes:
            self._metrics.published.labels(envelope.type).inc()
            if not routes.get(envelope.type):
                self._metrics.unrouted.labels(envelope.type).inc()

    def _deliveries(
        self, envelope: Envelope, routes: dict[str, list[str]], now: int
    ) -> list[NewJob]:
        groups = routes.get(envelope.type)
        if not groups:
            return []
        payload = serialization.dumps(
            [[envelope], {}], what="event", limit=self.settings.max_payload_bytes
        )
        return [
            NewJob(
                id=f"{envelope.event_id}@{group}",
                queue=group_queue(group),
                task=delivery_task(group, envelope.type),
                payload=payload,
                options=b"{}",  # the consumer's subscription owns retries and timeout
                priority=0,
                run_at=now,
                created_at=now,
                max_stalled=self.settings.max_stalled,
            )
            for group in groups
        ]


def _valid_id(event_id: object) -> bool:
    return (
        isinstance(event_id, str)
        and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
        and _SAFE_ID.fullmatch(event_id) is not None
    )
