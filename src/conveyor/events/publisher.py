"""Publishing: route an event to its groups and enqueue one delivery per group.

All deliveries of a publish call go to the job store in one step (one
transaction on SQLite, one MULTI/EXEC on a Redis server), so an event
reaches every subscribed group or none. A delivery's job id is
``<event_id>@<group>``: publishing the same event id again (an outbox relay
that crashed after publishing) adds nothing while the delivery is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import msgspec

from conveyor import serialization
from conveyor.clock import Clock
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
from conveyor.stores.base import JobStore, NewJob
from conveyor.stores.events import EventStore

MAX_EVENT_ID_LENGTH = 100


class Route(msgspec.Struct, frozen=True, omit_defaults=True):
    """How a group takes one event type; recorded in the store by its workers."""

    batch: int = 0
    """Events per delivery (0: one, and the handler takes one event)."""
    max_stalled: int | None = None
    """Stalls a delivery survives (None: the publisher's setting)."""


Routes = dict[str, list[tuple[str, Route]]]
"""Event type -> ``(group, route)`` of each subscribed group."""
_SAFE_ID = re.compile(r"[^\s{}@]+")


class Publisher:
    """Publishes through one store connection (the app's, or the sync facade's)."""

    def __init__(
        self,
        settings: Settings,
        jobs: JobStore,
        events: EventStore,
        local: Callable[[], dict[str, dict[str, Route]]],
        metrics: EventMetrics,
        opener: Callable[[], Awaitable[None]],
        clock: Clock,
        wakeups: Iterable[asyncio.Event] = (),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._jobs = jobs
        self._events = events
        self._local = local
        self._metrics = metrics
        self._open = opener
        self._wakeups = wakeups
        self._routes: Routes = {}
        self._routes_at = float("-inf")

    def forget_routes(self) -> None:
        self._routes_at = float("-inf")

    async def routes(self) -> Routes:
        """Event type -> the groups subscribed to it, each with how it takes the events.

        The store's record merged with this process's own subscriptions.
        """
        if time.monotonic() - self._routes_at > self.settings.event_route_ttl:
            self._routes = self.merge_routes(await self._events.groups())
            self._routes_at = time.monotonic()
        return self._routes

    def merge_routes(self, recorded: dict[str, bytes]) -> Routes:
        """Routes from the store's record of groups (group -> spec) and this process's own."""
        merged: dict[str, dict[str, Route]] = {}
        stored = {g: decode_spec(spec) for g, spec in recorded.items()}
        for source in (stored, self._local()):  # this process's own win
            for group, types in source.items():
                for type_name, route in types.items():
                    merged.setdefault(type_name, {})[group] = route
        return {t: sorted(by_group.items()) for t, by_group in merged.items()}

    async def publish(
        self,
        events: Sequence[object],
        *,
        event_id: str | None = None,
        event_ids: Sequence[str] | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> list[EventMeta]:
        if event_id is not None:
            if len(events) != 1 or event_ids is not None:
                raise BadInputError("event_id can only be given when publishing one event")
            event_ids = [event_id]
        if event_ids is not None and (isinstance(event_ids, str) or len(event_ids) != len(events)):
            raise BadInputError(
                f"event_ids must be a list with one id per event ({len(events)} events)"
            )
        if event_ids is not None and len(set(event_ids)) != len(event_ids):
            raise BadInputError("event_ids must be distinct within one publish call")
        now = self.clock.now_ms()
        ids: Sequence[str | None] = [None] * len(events) if event_ids is None else event_ids
        envelopes = [
            self.envelope(
                event, event_id=one_id, source=source, trace_id=trace_id, request_id=request_id
            )
            for event, one_id in zip(events, ids, strict=True)
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
            now=self.clock.now_ms(),
        )

    async def publish_envelopes(self, envelopes: Sequence[Envelope], now: int) -> None:
        """Enqueue the deliveries of ready-made envelopes in one store step."""
        await self._open()
        jobs = self.deliveries(envelopes, await self.routes(), now)
        if jobs:
            await self._jobs.enqueue(jobs)
            for wakeup in self._wakeups:
                wakeup.set()

    def deliveries(self, envelopes: Sequence[Envelope], routes: Routes, now: int) -> list[NewJob]:
        """The delivery jobs of ``envelopes`` (counted as published) under ``routes``."""
        by_type: dict[str, list[Envelope]] = {}
        for envelope in envelopes:
            by_type.setdefault(envelope.type, []).append(envelope)
        jobs: list[NewJob] = []
        for type_name, of_type in by_type.items():
            groups = routes.get(type_name)
            self._metrics.published.labels(type_name).inc(len(of_type))
            if not groups:
                self._metrics.unrouted.labels(type_name).inc(len(of_type))
                continue
            jobs += self._deliveries(type_name, of_type, groups, now)
        return jobs

    def _deliveries(
        self, type_name: str, envelopes: list[Envelope], groups: list[tuple[str, Route]], now: int
    ) -> list[NewJob]:
        """One job per event for each plain group; one per ``batch`` events for a batch group."""
        limit = self.settings.max_payload_bytes
        singles: list[tuple[str, bytes]] | None = None
        jobs: list[NewJob] = []
        for group, route in groups:
            task, queue = delivery_task(group, type_name), group_queue(group)
            stalls = self.settings.max_stalled if route.max_stalled is None else route.max_stalled
            batch = route.batch
            if batch:
                for start in range(0, len(envelopes), batch):
                    chunk = envelopes[start : start + batch]
                    payload = serialization.dumps([[chunk], {}], what="event batch", limit=limit)
                    job_id = f"{_batch_id(chunk)}@{group}"
                    jobs.append(self._job(job_id, queue, task, payload, now, stalls))
                continue
            if singles is None:
                singles = [
                    (e.event_id, serialization.dumps([[e], {}], what="event", limit=limit))
                    for e in envelopes
                ]
            jobs += [
                self._job(f"{event_id}@{group}", queue, task, payload, now, stalls)
                for event_id, payload in singles
            ]
        return jobs

    def _job(
        self, job_id: str, queue: str, task: str, payload: bytes, now: int, max_stalled: int
    ) -> NewJob:
        return NewJob(
            id=job_id,
            queue=queue,
            task=task,
            payload=payload,
            options=b"{}",  # the consumer's subscription owns retries and timeout
            priority=0,
            run_at=now,
            created_at=now,
            max_stalled=max_stalled,
        )


def _batch_id(chunk: Sequence[Envelope]) -> str:
    """A batch's id: the same events give the same id (a relay's re-publish adds nothing)."""
    digest = hashlib.blake2b(digest_size=16)
    for envelope in chunk:
        digest.update(envelope.event_id.encode())
        digest.update(b"\0")
    return f"batch-{digest.hexdigest()}"


class _Spec(msgspec.Struct):
    types: dict[str, Route] = {}


_spec_decoder = msgspec.json.Decoder(_Spec)


def encode_spec(types: dict[str, Route]) -> bytes:
    """A group's subscriptions as recorded in the store: event type -> route."""
    return msgspec.json.encode(_Spec(dict(sorted(types.items()))))


def decode_spec(spec: bytes) -> dict[str, Route]:
    return _spec_decoder.decode(spec).types


def _valid_id(event_id: object) -> bool:
    return (
        isinstance(event_id, str)
        and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
        and _SAFE_ID.fullmatch(event_id) is not None
    )
