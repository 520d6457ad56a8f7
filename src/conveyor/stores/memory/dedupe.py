"""Debounce and throttle keys in memory, under the job store's lock."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.base import JobState, NewJob, now_ms, released_state
from conveyor.stores.dedupe import Dedupe
from conveyor.stores.memory.jobs import MemoryJobStore

_PENDING = (JobState.SCHEDULED, JobState.WAITING)


class MemoryDedupeStore:
    """A :class:`~conveyor.stores.dedupe.DedupeStore` beside a :class:`MemoryJobStore`."""

    def __init__(self, jobs: MemoryJobStore) -> None:
        self._jobs = jobs

    async def enqueue_deduped(
        self, jobs: Sequence[tuple[NewJob, Dedupe]]
    ) -> list[tuple[str, bool]]:
        store = self._jobs
        keys = store.dedupe_keys
        answers: list[tuple[str, bool]] = []
        with store._lock:
            now = now_ms()
            if len(keys) > 1_000:
                for name in [k for k, (_, until) in keys.items() if until <= now]:
                    del keys[name]
            for new, dedupe in jobs:
                slot = (new.queue, dedupe.key)
                held = keys.get(slot)
                existing = store._jobs.get(held[0]) if held and held[1] > now else None
                if existing is not None and dedupe.mode == "throttle":
                    answers.append((existing.id, False))
                    continue
                if existing is not None and existing.state in _PENDING:
                    existing.payload, existing.options = new.payload, new.options
                    existing.priority, existing.run_at = new.priority, new.run_at
                    store._place(existing, released_state(new.run_at, now))
                    keys[slot] = (existing.id, dedupe.until)
                    answers.append((existing.id, False))
                    continue
                inserted = store.insert_locked(new, now)
                keys[slot] = (new.id, dedupe.until)
                answers.append((new.id, inserted))
        return answers
