"""Job ids: sortable by creation, unique, unguessable, 32 hex characters."""

from __future__ import annotations

import itertools
import time

import pytest

from conveyor.jobs.ids import new_job_id


def test_ids_made_in_one_millisecond_sort_in_the_order_they_were_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    ids = [new_job_id() for _ in range(2_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    steps = {int(b, 16) - int(a, 16) for a, b in itertools.pairwise(ids)}
    assert len(steps) > 1_000  # the step is random: the next id is not the last plus one


def test_an_id_after_the_clock_steps_back_still_sorts_after_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: now)
    before = new_job_id()
    monkeypatch.setattr(time, "time_ns", lambda: now - 5_000_000_000)
    assert new_job_id() > before


def test_an_id_starts_with_its_millisecond() -> None:
    made_ms = time.time_ns() // 1_000_000
    assert abs(int(new_job_id()[:12], 16) - made_ms) < 1_000
