"""Fixtures of the conformance suite: each store's backend, opened on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.clock import ManualClock
from conveyor.config import load_settings
from conveyor.stores.backend import Backend
from conveyor.stores.base import JobState, JobStore
from conveyor.stores.registry import make_backend
from tests.conftest import AppFactory

START_MS = 1_800_000_000_000
"""Where the manual clock of a ``backend`` starts (a minute boundary, in 2027)."""


@pytest.fixture
async def make_app(make_app: AppFactory) -> AsyncIterator[AppFactory]:
    """The suite's ``make_app``; after each test, every app's store counts its jobs as its
    listings find them (SQLite keeps the counts step by step: any step that forgot to
    would show here)."""
    apps: list[Conveyor] = []

    def make(**settings: Any) -> Conveyor:
        app = make_app(**settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.open()
        await assert_counts_match_listings(app.store)


@pytest.fixture
async def backend(store_url: str) -> AsyncIterator[Backend]:
    """The store under test as its backend, on a :class:`ManualClock` at :data:`START_MS`."""
    clock = ManualClock(START_MS)
    settings = load_settings(store_url, {"log_level": "WARNING"})
    backend = make_backend(store_url, settings, clock)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def assert_counts_match_listings(store: JobStore) -> None:
    """``counts()`` (kept by every step on SQLite, counted on the others) says what a listing
    of each queue and state finds."""
    counts = await store.counts()
    queues = set(counts) | {q.name for q in await store.queues()}
    for queue in queues:
        for state in JobState:
            listed, cursor = 0, None
            while True:
                page = await store.list_page(queue, state, cursor, 200)
                listed += len(page.records)
                if (cursor := page.next) is None:
                    break
            assert counts.get(queue, {}).get(state, 0) == listed, (queue, state)


def manual_clock(backend: Backend) -> ManualClock:
    clock = backend.clock
    assert isinstance(clock, ManualClock)
    return clock
