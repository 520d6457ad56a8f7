"""Backoff arithmetic and retention fallbacks."""

from __future__ import annotations

from conveyor import Backoff, Retention


def test_exponential_backoff_grows_and_is_capped() -> None:
    backoff = Backoff.exponential(base=1, factor=2, max_delay=10, jitter=False)
    assert [backoff(n) for n in range(1, 6)] == [1, 2, 4, 8, 10]


def test_jitter_stays_within_the_upper_half() -> None:
    backoff = Backoff.exponential(base=4, factor=2, max_delay=100)
    for _ in range(200):
        assert 4 <= backoff(2) <= 8


def test_fixed_and_custom_backoff() -> None:
    assert Backoff.fixed(3)(7) == 3
    assert Backoff(lambda attempt: attempt * 1.5)(4) == 6
    assert Backoff(lambda attempt: -5)(1) == 0


def test_retention_falls_back_field_by_field() -> None:
    base = Retention(completed=100, completed_for=60, failed=10, failed_for=600)
    assert Retention(completed=5).over(base) == Retention(5, 60, 10, 600)
