"""Shared fixtures: every store the conformance suite runs against."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor

STORES = ["memory", "sqlite"]


def store_url_for(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    raise ValueError(kind)


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request.param, tmp_path)


AppFactory = Callable[..., Conveyor]


@pytest.fixture
async def make_app(store_url: str) -> AsyncIterator[AppFactory]:
    """Build apps on the store under test; all are closed after the test."""
    apps: list[Conveyor] = []

    def make(**settings: Any) -> Conveyor:
        settings.setdefault("log_level", "WARNING")
        app = Conveyor(store_url, **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.close()
