"""``app.events``: subscribe handlers, publish typed events, manage dead letters.

Delivery is built on the job engine (see ``subscription.py``): each
subscriber group is a queue, each (group, event type) handler a task, each
delivery a job. Publishing enqueues one delivery per subscribed group in
one store step (``publisher.py``).

>>> @app.events.subscribe(OrderCreated, group="audit")
... async def record(event: OrderCreated) -> None: ...
>>> await app.events.publish(OrderCreated(order_id=7))
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.errors import BadInputError, ProgrammingError
from conveyor.events.audit import AuditLog
from conveyor.events.deadletters import DeadLetters
from conveyor.events.envelope import (
    GROUP_QUEUE_PREFIX,
    EventMeta,
    delivery_task,
    event_type,
    group_queue,
)
from conveyor.events.metrics import EventMetrics
from conveyor.events.outbox import Outbox
from conveyor.events.publisher import Publisher, Route, decode_spec, encode_spec
from conveyor.events.subscription import Subscription
from conveyor.jobs.retry import Backoff, BackoffLike, Retention
from conveyor.stores.base import JobStore
from conveyor.stores.events import EventStore

if TYPE_CHECKING:
    from conveyor.events.host import EventHost

H = TypeVar("H", bound=Callable[..., Any])

_GROUP = re.compile(r"[A-Za-z0-9_.-]{1,100}")
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = Backoff.exponential(base=1.0, factor=2.0, max_delay=3600.0, jitter=False)
"""1 s, 2 s, 4 s, ... between a delivery's attempts."""
REMEMBER_FOR = 7 * 86_400.0
"""How long an idempotent group remembers a processed event id (seconds)."""


class EventBus:
    """The app's event bus; see the module docstring."""

    def __init__(self, app: EventHost) -> None:
        self._app = app
        self.metrics = EventMetrics(app.metrics.registry)
        app.metrics.scrape_hooks.append(
            lambda counts: self.metrics.refresh(counts, GROUP_QUEUE_PREFIX)
        )
        self.store: EventStore = app.backend.events
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        """(group, event type) -> subscription, for the handlers of this process."""
        self.publisher = self.publisher_over(app.store, self.store, app.open)
        self.dead_letters = DeadLetters(app.jobs)
        self._undeclared = False
        """Subscriptions were added since the last ``declare``."""

    def publisher_over(
        self, jobs: JobStore, events: EventStore, opener: Callable[[], Awaitable[None]]
    ) -> Publisher:
        """A publisher over other connections (the sync facade has its own)."""
        app = self._app
        return Publisher(
            app.settings,
            jobs,
            events,
            self._local_groups,
            self.metrics,
            opener,
            app.clock,
            app.jobs.wakeups,
        )

    # -- subscribing ----------------------------------------------------------

    def subscribe(
        self,
        event_cls: type[Any],
        *,
        group: str,
        retries: int = DEFAULT_RETRIES,
        backoff: BackoffLike = DEFAULT_BACKOFF,
        timeout: float | None = None,
        batch: int = 0,
        idempotent: bool = False,
        remember_for: float = REMEMBER_FOR,
        max_stalled: int | None = None,
    ) -> Callable[[H], H]:
        """Handle events of ``event_cls`` in ``group``: ``handler(event)`` or ``(event, meta)``.

        Every group gets every event (fan-out); the workers of one group
        share its deliveries (competing consumers). A failing handler is
        retried ``retries`` times after ``backoff`` (default 1 s, 2 s, 4 s),
        then its delivery is dead-lettered. With ``batch=N`` a delivery
        carries up to N events of one publish call, the handler takes lists
        (``handler(events)`` or ``(events, metas)``), and retries, dead
        letters and replay apply to the batch. With ``idempotent`` the group
        records each processed event id for ``remember_for`` seconds and
        skips a redelivered one.
        """
        if not isinstance(group, str) or not _GROUP.fullmatch(group):
            raise ProgrammingError(
                f"group must be 1..100 letters, digits, '_', '.' or '-', got {group!r}"
            )
        try:
            type_name, _version = event_type(event_cls)
        except BadInputError as exc:
            raise ProgrammingError(str(exc)) from None
        if (group, type_name) in self.subscriptions:
            raise ProgrammingError(f"group {group!r} already handles {type_name!r} events")
        if remember_for <= 0:
            raise ProgrammingError("remember_for must be > 0 seconds")
        if not isinstance(batch, int) or not 0 <= batch <= 10_000:
            raise ProgrammingError("batch must be 0 (one event per delivery) to 10000")

        def register(handler: H) -> H:
            sub = Subscription(
                group=group,
                type_name=type_name,
                event_cls=event_cls,
                handler=handler,
                batch=batch,
                idempotent=idempotent,
                remember_for=remember_for,
                store=lambda: self.store,
                metrics=self.metrics,
                clock=self._app.clock,
            )
            settings = self._app.settings
            task = self._app.register_task(
                sub.deliver,
                name=delivery_task(group, type_name),
                queue=group_queue(group),
                retries=retries,
                backoff=backoff,
                timeout=timeout,
                max_stalled=max_stalled,
                retention=Retention(
                    failed=settings.event_dead_letters,
                    failed_for=settings.event_dead_letters_seconds,
                ),
            )
            task.on_outcome = sub.on_outcome
            sub.route = Route(batch=batch, max_stalled=task.max_stalled)
            self.subscriptions[group, type_name] = sub
            self._undeclared = True
            self.publisher.forget_routes()
            return handler

        return register

    def audit(
        self,
        *event_types: type[Any],
        database: Any,
        table: str = "conveyor_audit",
        group: str = "audit",
        retries: int = DEFAULT_RETRIES,
        backoff: BackoffLike = DEFAULT_BACKOFF,
    ) -> AuditLog:
        """Record every event of ``event_types`` in ``table`` (see ``AuditLog``)."""
        if not event_types:
            raise ProgrammingError("name the event types to audit")
        audit = AuditLog(database, table)
        for cls in event_types:
            self.subscribe(cls, group=group, retries=retries, backoff=backoff)(audit.record)
        return audit

    def outbox(self, table: str = "conveyor_outbox", *, batch: int = 500) -> Outbox:
        """A transactional outbox in the application's database (see ``Outbox``)."""
        if not 0 < batch <= 10_000:
            raise ProgrammingError("batch must be 1..10000")
        return Outbox(self.publisher, table, batch)

    def _local_groups(self) -> dict[str, dict[str, Route]]:
        groups: dict[str, dict[str, Route]] = {}
        for (group, type_name), sub in self.subscriptions.items():
            groups.setdefault(group, {})[type_name] = sub.route
        return groups

    async def declare(self) -> None:
        """Record this process's subscriptions in the store, so every publisher routes to them.

        Workers do this when they start. A group's recorded types are
        replaced by the ones this process subscribes it to.
        """
        if not self._undeclared:
            return
        await self._app.open()
        now = self._app.clock.now_ms()
        for group, types in self._local_groups().items():
            await self.store.save_group(group, encode_spec(types), now)
        self._undeclared = False
        self.publisher.forget_routes()

    async def groups(self) -> dict[str, list[str]]:
        """Every group recorded in the store (and this process's), with its event types."""
        await self._app.open()
        found = {
            group: set(decode_spec(spec)) for group, spec in (await self.store.groups()).items()
        }
        for group, types in self._local_groups().items():
            found.setdefault(group, set()).update(types)
        return {group: sorted(types) for group, types in sorted(found.items())}

    async def drop_group(self, group: str) -> bool:
        """Stop routing events to ``group`` (its queue and dead letters stay)."""
        await self._app.open()
        dropped = await self.store.drop_group(group)
        self.publisher.forget_routes()
        return dropped

    # -- publishing -----------------------------------------------------------

    async def publish(
        self,
        event: object,
        *,
        event_id: str | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> EventMeta:
        """Deliver ``event`` to every subscribed group (at least once each).

        ``trace_id``/``request_id`` default to the ones bound in the logging
        context (or those of the event being handled); ``event_id`` defaults
        to a new UUID, and publishing an id again adds nothing while its
        deliveries are kept.
        """
        await self.declare()
        (meta,) = await self.publisher.publish(
            [event], event_id=event_id, source=source, trace_id=trace_id, request_id=request_id
        )
        return meta

    async def publish_many(
        self,
        events: Sequence[object],
        *,
        event_ids: Sequence[str] | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> list[EventMeta]:
        """Publish several events in one store step: all are delivered, or none.

        ``event_ids`` (one per event, e.g. the ids a client sent with them) make
        the call idempotent per event, as ``publish(event_id=...)`` does for one.
        """
        await self.declare()
        return await self.publisher.publish(
            list(events),
            event_ids=event_ids,
            source=source,
            trace_id=trace_id,
            request_id=request_id,
        )

    def publish_sync(self, event: object, **options: Any) -> EventMeta:
        """``publish`` for sync code (Django, Flask, scripts)."""
        (meta,) = self._app.sync.publish([event], **options)
        return meta
