"""Debounce and throttle keys in memory, under the state's lock."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.base import JobState, NewJob, released_state
from conveyor.stores.dedupe import Dedupe
from conveyor.stores.memory.state import MemoryState
from conveyor.stores.search import job_field_keys

_PENDING = (JobState.SCHEDULED, JobState.WAITING)


class MemoryDedupeStore:
    """A :class:`~conveyor.stores.dedupe.DedupeStore` over a memory state."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def enqueue_deduped(
        self, jobs: Sequence[tuple[NewJob, Dedupe]]
    ) -> list[tuple[str, bool]]:
        state = self._state
        keys = state.dedupe_keys
        answers: list[tuple[str, bool]] = []
        with state.lock:
            now = state.clock.now_ms()
            if len(keys) > 1_000:
                for name in [k for k, (_, until) in keys.items() if until <= now]:
                    del keys[name]
            for new, dedupe in jobs:
                slot = (new.queue, dedupe.key)
                held = keys.get(slot)
                existing = state.jobs.get(held[0]) if held and held[1] > now else None
                if existing is not None and dedupe.mode == "throttle":
                    answers.append((existing.id, False))
                    continue
                if existing is not None and existing.state in _PENDING:
                    existing.payload, existing.options = new.payload, new.options
                    existing.priority, existing.run_at = new.priority, new.run_at
                    existing.keys = set(job_field_keys(new.search_keys))  # pending: no errors
                    state.place(existing, released_state(new.run_at, now))
                    keys[slot] = (existing.id, dedupe.until)
                    answers.append((existing.id, False))
                    continue
                inserted = state.insert(new, now)
                keys[slot] = (new.id, dedupe.until)
                answers.append((new.id, inserted))
        return answers
