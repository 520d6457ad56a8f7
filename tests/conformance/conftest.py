"""Fixtures of the conformance suite: each store's backend, opened on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conveyor.clock import ManualClock
from conveyor.config import load_settings
from conveyor.stores.backend import Backend
from conveyor.stores.registry import make_backend

START_MS = 1_800_000_000_000
"""Where the manual clock of a ``backend`` starts (a minute boundary, in 2027)."""


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


def manual_clock(backend: Backend) -> ManualClock:
    clock = backend.clock
    assert isinstance(clock, ManualClock)
    return clock
