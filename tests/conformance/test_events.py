"""The event bus on every store: fan-out, retries, dead letters, replay, idempotency."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
import pytest
import structlog

from conveyor import (
    BadInputError,
    EventMeta,
    JobState,
    NotFoundError,
    PayloadTooLargeError,
    ProgrammingError,
)
from conveyor.events.publisher import decode_spec
from tests.conftest import AppFactory


class OrderCreated(msgspec.Struct, frozen=True):
    order_id: int
    total: float
    placed_at: datetime


@dataclasses.dataclass(frozen=True)
class OrderShipped:
    order_id: int
    carrier: str


class OrderCancelled(pydantic.BaseModel):
    order_id: int
    reason: str


PLACED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def sample_value(registry: Any, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


async def test_every_group_gets_every_event_with_its_metadata(make_app: AppFactory) -> None:
    app = make_app(event_source="orders-api")
    seen: list[tuple[str, Any, EventMeta]] = []

    @app.events.subscribe(OrderCreated, group="audit")
    async def audit(event: OrderCreated, meta: EventMeta) -> None:
        seen.append(("audit", event, meta))

    @app.events.subscribe(OrderCreated, group="notifier")
    async def notify(event: OrderCreated, meta: EventMeta) -> None:
        seen.append(("notifier", event, meta))

    structlog.contextvars.bind_contextvars(trace_id="trace-1", request_id="req-1")
    try:
        published = await app.events.publish(OrderCreated(7, 19.5, PLACED))
    finally:
        structlog.contextvars.unbind_contextvars("trace_id", "request_id")
    assert published.type == "OrderCreated"
    assert published.source == "orders-api"
    assert published.trace_id == "trace-1"
    assert published.request_id == "req-1"
    await app.work(burst=True)

    assert sorted(group for group, _, _ in seen) == ["audit", "notifier"]
    for group, event, meta in seen:
        assert event == OrderCreated(7, 19.5, PLACED)
        assert meta.event_id == published.event_id
        assert meta.group == group
        assert meta.attempt == 1
        assert meta.trace_id == "trace-1"
        assert meta.request_id == "req-1"
        assert meta.occurred_at == published.occurred_at
        assert meta.version == 1
    registry = app.metrics.registry
    assert sample_value(registry, "conveyor_events_published_total", type="OrderCreated") == 1
    for group in ("audit", "notifier"):
        labels = {"group": group, "type": "OrderCreated"}
        assert sample_value(registry, "conveyor_events_delivered_total", **labels) == 1
        assert sample_value(registry, "conveyor_event_handler_seconds_count", **labels) == 1


async def test_dataclass_pydantic_and_sync_handlers(make_app: AppFactory) -> None:
    app = make_app()
    seen: list[Any] = []

    @app.events.subscribe(OrderShipped, group="shipping")
    def shipped(event: OrderShipped) -> None:  # sync: runs in a thread
        seen.append(event)

    @app.events.subscribe(OrderCancelled, group="shipping")
    async def cancelled(event: OrderCancelled) -> None:
        seen.append(event)

    await app.events.publish_many([OrderShipped(1, "ups"), OrderCancelled(order_id=2, reason="x")])
    await app.work(burst=True)
    assert sorted(seen, key=repr) == sorted(
        [OrderShipped(1, "ups"), OrderCancelled(order_id=2, reason="x")], key=repr
    )


async def test_a_group_shares_its_deliveries_between_workers(make_app: AppFactory) -> None:
    app = make_app()
    handled: list[int] = []

    @app.events.subscribe(OrderShipped, group="billing")
    async def bill(event: OrderShipped) -> None:
        await asyncio.sleep(0.001)
        handled.append(event.order_id)

    await app.events.publish_many([OrderShipped(n, "dhl") for n in range(60)])
    first, second = app.worker(concurrency=4), app.worker(concurrency=4)
    runs = [asyncio.create_task(w.run()) for w in (first, second)]
    while len(handled) < 60:
        await asyncio.sleep(0.01)
    for worker in (first, second):
        worker.stop()
    await asyncio.gather(*runs)
    assert sorted(handled) == list(range(60))
    assert first.stats.completed + second.stats.completed == 60


async def test_a_poison_event_is_dead_lettered_after_exactly_n_attempts(
    make_app: AppFactory,
) -> None:
    app = make_app()
    attempts: list[int] = []
    broken = True

    @app.events.subscribe(OrderShipped, group="labels", retries=2, backoff=0)
    async def print_label(event: OrderShipped, meta: EventMeta) -> None:
        attempts.append(meta.attempt)
        if broken:
            raise ValueError(f"no printer for {event.carrier}")

    published = await app.events.publish(OrderShipped(3, "fedex"))
    await app.work(burst=True)
    assert attempts == [1, 2, 3]

    (letter,) = await app.events.dead_letters.list("labels")
    assert letter.id == f"{published.event_id}@labels"
    assert letter.group == "labels"
    assert letter.attempts == 3
    assert letter.meta.event_id == published.event_id
    assert letter.data == {"order_id": 3, "carrier": "fedex"}
    assert letter.error is not None
    assert letter.error.type == "ValueError"
    assert letter.error.message == "no printer for fedex"
    assert "print_label" in (letter.error.traceback or "")
    assert await app.events.dead_letters.get(letter.id) == letter
    assert await app.events.dead_letters.count() == {"labels": 1}
    registry = app.metrics.registry
    labels = {"group": "labels", "type": "OrderShipped"}
    assert sample_value(registry, "conveyor_events_retried_total", **labels) == 2
    assert sample_value(registry, "conveyor_events_dead_lettered_total", **labels) == 1

    broken = False
    await app.events.dead_letters.replay(letter.id)
    await app.work(burst=True)
    assert attempts == [1, 2, 3, 1]
    assert await app.events.dead_letters.list("labels") == []
    assert sample_value(registry, "conveyor_events_delivered_total", **labels) == 1


async def test_replay_all_and_purge(make_app: AppFactory) -> None:
    app = make_app()
    broken = True
    handled: list[int] = []

    @app.events.subscribe(OrderShipped, group="a", retries=0)
    async def first(event: OrderShipped) -> None:
        if broken:
            raise RuntimeError("down")
        handled.append(event.order_id)

    @app.events.subscribe(OrderShipped, group="b", retries=0)
    async def second(event: OrderShipped) -> None:
        raise RuntimeError("always")

    await app.events.publish_many([OrderShipped(n, "ups") for n in range(5)])
    await app.work(burst=True)
    assert await app.events.dead_letters.count() == {"a": 5, "b": 5}
    assert len(await app.events.dead_letters.list(limit=7)) == 7
    assert len(await app.events.dead_letters.list(offset=8)) == 2

    broken = False
    assert await app.events.dead_letters.replay_all("a") == 5
    await app.work(burst=True)
    assert sorted(handled) == list(range(5))
    assert await app.events.dead_letters.purge("b") == 5
    assert await app.events.dead_letters.count() == {"a": 0, "b": 0}
    with pytest.raises(NotFoundError):
        await app.events.dead_letters.get("nope@a")


async def test_a_dead_letter_of_undecodable_data_fails_at_once(make_app: AppFactory) -> None:
    app = make_app()

    class Renamed(msgspec.Struct):
        __event_type__ = "OrderShipped"
        order_number: str

    calls = 0

    @app.events.subscribe(Renamed, group="legacy", retries=5, backoff=0)
    async def legacy(event: Renamed) -> None:
        nonlocal calls
        calls += 1

    await app.events.publish(OrderShipped(1, "ups"))
    await app.work(burst=True)
    (letter,) = await app.events.dead_letters.list("legacy")
    assert calls == 0
    assert letter.attempts == 1
    assert letter.error is not None
    assert letter.error.type == "NonRetryableError"


async def test_publishing_an_event_id_twice_delivers_once(make_app: AppFactory) -> None:
    app = make_app()
    handled: list[str] = []

    @app.events.subscribe(OrderShipped, group="once")
    async def once(event: OrderShipped, meta: EventMeta) -> None:
        handled.append(meta.event_id)

    await app.events.publish(OrderShipped(1, "ups"), event_id="evt-1")
    await app.events.publish(OrderShipped(1, "ups"), event_id="evt-1")
    await app.work(burst=True)
    await app.events.publish(OrderShipped(1, "ups"), event_id="evt-1")
    await app.work(burst=True)
    assert handled == ["evt-1"]


async def test_an_idempotent_group_skips_an_event_it_processed(make_app: AppFactory) -> None:
    app = make_app()
    counted: dict[str, int] = {"plain": 0, "careful": 0}

    @app.events.subscribe(OrderShipped, group="plain")
    async def plain(event: OrderShipped) -> None:
        counted["plain"] += 1

    @app.events.subscribe(OrderShipped, group="careful", idempotent=True)
    async def careful(event: OrderShipped) -> None:
        counted["careful"] += 1

    await app.events.publish(OrderShipped(1, "ups"), event_id="evt-9")
    await app.work(burst=True)
    # The deliveries are gone (retention, a purge): the same event arrives again.
    await app.jobs.remove("evt-9@plain")
    await app.jobs.remove("evt-9@careful")
    await app.events.publish(OrderShipped(1, "ups"), event_id="evt-9")
    await app.work(burst=True)
    assert counted == {"plain": 2, "careful": 1}
    assert await app.events.store.processed("careful", ["evt-9", "evt-0"], 0) == {"evt-9"}
    assert await app.events.store.processed("plain", ["evt-9"], 0) == set()


async def test_a_failed_idempotent_delivery_is_not_remembered(make_app: AppFactory) -> None:
    app = make_app()
    attempts = 0

    @app.events.subscribe(OrderShipped, group="careful", idempotent=True, retries=1, backoff=0)
    async def careful(event: OrderShipped) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first try fails")

    await app.events.publish(OrderShipped(1, "ups"))
    await app.work(burst=True)
    assert attempts == 2
    assert await app.events.dead_letters.count() == {"careful": 0}


async def test_handlers_pass_the_trace_on_to_what_they_publish(make_app: AppFactory) -> None:
    app = make_app()
    traces: list[str | None] = []

    @app.events.subscribe(OrderCreated, group="orders")
    async def on_created(event: OrderCreated) -> None:
        await app.events.publish(OrderShipped(event.order_id, "ups"))

    @app.events.subscribe(OrderShipped, group="orders")
    async def on_shipped(event: OrderShipped, meta: EventMeta) -> None:
        traces.append(meta.trace_id)

    await app.events.publish(OrderCreated(1, 1.0, PLACED), trace_id="t-42")
    await app.work(burst=True)
    assert traces == ["t-42"]


async def test_subscriptions_are_recorded_in_the_store(make_app: AppFactory) -> None:
    app = make_app()

    @app.events.subscribe(OrderShipped, group="audit")
    async def a(event: OrderShipped) -> None: ...

    @app.events.subscribe(OrderCreated, group="audit")
    async def b(event: OrderCreated) -> None: ...

    await app.events.declare()
    assert await app.events.groups() == {"audit": ["OrderCreated", "OrderShipped"]}
    assert list(await app.events.store.groups()) == ["audit"]
    assert await app.events.drop_group("audit")
    assert await app.events.store.groups() == {}
    assert not await app.events.drop_group("audit")


async def test_an_event_nobody_subscribes_to_is_counted_and_dropped(make_app: AppFactory) -> None:
    app = make_app()
    await app.events.publish(OrderShipped(1, "ups"))
    assert await app.jobs.counts() == {}
    assert (
        sample_value(app.metrics.registry, "conveyor_events_unrouted_total", type="OrderShipped")
        == 1
    )


async def test_bad_events_raise_typed_errors_and_write_nothing(make_app: AppFactory) -> None:
    app = make_app(max_payload_bytes=1024)

    @app.events.subscribe(OrderShipped, group="g")
    async def handle(event: OrderShipped) -> None: ...

    with pytest.raises(BadInputError, match="cannot be an event"):
        await app.events.publish_many([OrderShipped(1, "ups"), {"order_id": 1}])
    with pytest.raises(PayloadTooLargeError):
        await app.events.publish_many([OrderShipped(1, "ups"), OrderShipped(2, "x" * 2000)])
    with pytest.raises(BadInputError, match="event_id"):
        await app.events.publish(OrderShipped(1, "ups"), event_id="has space")
    assert await app.jobs.counts() == {}
    with pytest.raises(ProgrammingError, match="group"):
        app.events.subscribe(OrderShipped, group="no{braces}")
    with pytest.raises(ProgrammingError, match="already handles"):
        app.events.subscribe(OrderShipped, group="g")
    with pytest.raises(ProgrammingError, match="cannot be an event"):
        app.events.subscribe(dict, group="h")


async def test_a_handler_timeout_counts_as_a_failed_attempt(make_app: AppFactory) -> None:
    app = make_app()

    @app.events.subscribe(OrderShipped, group="slow", retries=1, backoff=0, timeout=0.05)
    async def slow(event: OrderShipped) -> None:
        await asyncio.sleep(5)

    await app.events.publish(OrderShipped(1, "ups"))
    await app.work(burst=True)
    (letter,) = await app.events.dead_letters.list("slow")
    assert letter.attempts == 2
    assert letter.error is not None
    assert letter.error.type == "JobTimeoutError"


async def test_backlog_per_group_is_exported(make_app: AppFactory) -> None:
    app = make_app()

    @app.events.subscribe(OrderShipped, group="reports")
    async def report(event: OrderShipped) -> None: ...

    await app.events.publish_many([OrderShipped(n, "ups") for n in range(3)])
    text = (await app.metrics_text()).decode()
    assert 'conveyor_events_backlog{group="reports"} 3.0' in text
    await app.work(burst=True)
    text = (await app.metrics_text()).decode()
    assert 'conveyor_events_backlog{group="reports"} 0.0' in text
    assert (await app.jobs.counts())["events.reports"][JobState.COMPLETED] == 3


async def test_publish_sync(make_app: AppFactory) -> None:
    app = make_app()
    handled: list[int] = []

    @app.events.subscribe(OrderShipped, group="sync")
    async def handle(event: OrderShipped) -> None:
        handled.append(event.order_id)

    meta = await asyncio.to_thread(app.events.publish_sync, OrderShipped(5, "ups"))
    assert meta.type == "OrderShipped"
    await app.work(burst=True)
    assert handled == [5]


async def test_a_batch_group_gets_the_events_of_a_publish_call_in_batches(
    make_app: AppFactory,
) -> None:
    app = make_app()
    batches: list[list[int]] = []
    singles: list[int] = []

    @app.events.subscribe(OrderShipped, group="warehouse", batch=10)
    async def restock(events: list[OrderShipped], metas: list[EventMeta]) -> None:
        assert [m.type for m in metas] == ["OrderShipped"] * len(events)
        batches.append([e.order_id for e in events])

    @app.events.subscribe(OrderShipped, group="mail")
    async def mail(event: OrderShipped) -> None:
        singles.append(event.order_id)

    await app.events.publish_many([OrderShipped(n, "ups") for n in range(25)])
    await app.work(burst=True)
    assert sorted(map(len, batches)) == [5, 10, 10]
    assert sorted(n for batch in batches for n in batch) == list(range(25))
    assert sorted(singles) == list(range(25))
    counts = await app.jobs.counts()
    assert counts["events.warehouse"][JobState.COMPLETED] == 3
    assert counts["events.mail"][JobState.COMPLETED] == 25


async def test_a_failed_batch_is_one_dead_letter_and_replays_whole(make_app: AppFactory) -> None:
    app = make_app()
    broken = True
    seen: list[list[int]] = []

    @app.events.subscribe(OrderShipped, group="ledger", batch=50, retries=1, backoff=0)
    async def post(events: list[OrderShipped]) -> None:
        seen.append([e.order_id for e in events])
        if broken:
            raise RuntimeError("ledger locked")

    await app.events.publish_many([OrderShipped(n, "ups") for n in range(3)])
    await app.work(burst=True)
    (letter,) = await app.events.dead_letters.list("ledger")
    assert letter.attempts == 2
    assert [event.data["order_id"] for event in letter.events] == [0, 1, 2]
    assert letter.meta == letter.events[0].meta
    broken = False
    await app.events.dead_letters.replay(letter.id)
    await app.work(burst=True)
    assert seen == [[0, 1, 2]] * 3
    assert await app.events.dead_letters.count() == {"ledger": 0}


async def test_an_idempotent_batch_group_skips_the_events_it_processed(
    make_app: AppFactory,
) -> None:
    app = make_app()
    seen: list[list[int]] = []

    @app.events.subscribe(OrderShipped, group="stats", batch=100, idempotent=True)
    async def count(events: list[OrderShipped]) -> None:
        seen.append([e.order_id for e in events])

    await app.events.publish(OrderShipped(1, "ups"), event_id="e-1")
    await app.work(burst=True)
    (done,) = await app.jobs.list("completed", "events.stats")
    await app.jobs.remove(done.id)
    # The first event again, now in a batch with a new one: only the new one is handled.
    first, second = OrderShipped(1, "ups"), OrderShipped(2, "ups")
    envelopes = [
        app.events.publisher.envelope(first, event_id="e-1"),
        app.events.publisher.envelope(second, event_id="e-2"),
    ]
    await app.events.publisher.publish_envelopes(envelopes, 0)
    await app.work(burst=True)
    assert seen == [[1], [2]]


async def test_the_consumers_stall_bound_travels_with_its_deliveries(make_app: AppFactory) -> None:
    app = make_app(max_stalled=1)

    @app.events.subscribe(OrderShipped, group="patient", max_stalled=4)
    async def handle(event: OrderShipped) -> None: ...

    await app.events.declare()
    (route,) = decode_spec((await app.events.store.groups())["patient"]).values()
    assert route.max_stalled == 4
    meta = await app.events.publish(OrderShipped(1, "ups"))
    record = await app.store.get(f"{meta.event_id}@patient")
    assert record is not None
    assert record.max_stalled == 4


async def test_dead_letters_are_kept_up_to_the_configured_count(make_app: AppFactory) -> None:
    app = make_app(event_dead_letters=2)

    @app.events.subscribe(OrderShipped, group="bounded", retries=0)
    async def always_fails(event: OrderShipped) -> None:
        raise RuntimeError("down")

    for n in range(4):  # one at a time, so each failure trims the ones before
        await app.events.publish(OrderShipped(n, "ups"))
        await app.work(burst=True)
    letters = await app.events.dead_letters.list("bounded")
    assert sorted(letter.data["order_id"] for letter in letters) == [2, 3]


async def test_processed_ids_are_forgotten_after_remember_for(make_app: AppFactory) -> None:
    app = make_app()
    store = app.events.store
    await app.open()
    await store.mark_processed("g", ["e-1", "e-2"], expires_at=2_000, now=1_000)
    assert await store.processed("g", ["e-1", "e-2", "e-3"], 1_500) == {"e-1", "e-2"}
    assert await store.processed("g", ["e-1"], 2_000) == set()
    assert await store.processed("other", ["e-1"], 1_500) == set()


async def test_publish_many_with_event_ids_is_idempotent_per_event(make_app: AppFactory) -> None:
    app = make_app()
    handled: list[str] = []
    batched: list[list[str]] = []

    @app.events.subscribe(OrderShipped, group="each")
    async def each(event: OrderShipped, meta: EventMeta) -> None:
        handled.append(meta.event_id)

    @app.events.subscribe(OrderShipped, group="stats", batch=50, idempotent=True)
    async def stats(events: list[OrderShipped], metas: list[EventMeta]) -> None:
        batched.append([meta.event_id for meta in metas])

    metas = await app.events.publish_many(
        [OrderShipped(1, "ups"), OrderShipped(2, "ups")], event_ids=["c-1", "c-2"]
    )
    assert [meta.event_id for meta in metas] == ["c-1", "c-2"]
    await app.work(burst=True)
    # A client sends its batch again with one new event: only the new one is handled.
    await app.events.publish_many(
        [OrderShipped(2, "ups"), OrderShipped(3, "ups")], event_ids=["c-2", "c-3"]
    )
    await app.work(burst=True)
    assert sorted(handled) == ["c-1", "c-2", "c-3"]
    assert batched == [["c-1", "c-2"], ["c-3"]]


async def test_publish_many_refuses_event_ids_that_do_not_match_its_events(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.events.subscribe(OrderShipped, group="each")
    async def each(event: OrderShipped) -> None: ...

    events = [OrderShipped(1, "ups"), OrderShipped(2, "ups")]
    with pytest.raises(BadInputError, match="one id per event"):
        await app.events.publish_many(events, event_ids=["only-one"])
    with pytest.raises(BadInputError, match="distinct"):
        await app.events.publish_many(events, event_ids=["same", "same"])
    with pytest.raises(BadInputError, match="event_id must be"):
        await app.events.publish_many(events, event_ids=["ok", "not ok"])
    assert await app.jobs.list("waiting", "events.each") == []
