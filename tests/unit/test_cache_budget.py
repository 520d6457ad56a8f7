"""A cache's shared calls wait the tier's own default budget unless ``budget`` is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Cache


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", 0.05),
        ("redis://127.0.0.1:1/0", 0.05),
        ("postgresql://u@127.0.0.1:1/db", 0.25),
        ("sqlite:///{tmp}/cache.db", 2.0),
    ],
)
async def test_the_default_budget_is_the_tiers(url: str, expected: float, tmp_path: Path) -> None:
    cache = Cache(url.format(tmp=tmp_path))  # nothing is connected before the first call
    assert cache._core.budget == expected
    explicit = Cache(url.format(tmp=tmp_path), budget=0.3)
    assert explicit._core.budget == 0.3
