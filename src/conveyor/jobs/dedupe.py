"""Debounce and throttle: deduplicate enqueues by a key rather than by job id.

``task.options(debounce=("reindex:7", 5)).enqueue(...)``: the job runs 5 s
after the last enqueue of a burst with that key; each new enqueue replaces
the payload of the still-pending job (scheduled or waiting, not yet claimed)
and pushes its run time to now + 5 s. Once that job has been claimed, the
next enqueue makes a new job.

With 0 seconds, a burst of enqueues while the job waits in a backlog
collapses into one run with the last arguments.

``task.options(throttle=("digest:7", 60)).enqueue(...)``: the first enqueue
with that key makes a job; any other within 60 s returns that job and
writes nothing.

Keys are scoped to the task and its queue. A debounce key is remembered for
:data:`DEBOUNCE_MEMORY_MS` after its job's run time: a job still waiting
after that (a badly backlogged queue) is no longer replaced, a new one is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from conveyor.stores.base import JobStore, NewJob
from conveyor.stores.dedupe import Dedupe, DedupeStore

DEBOUNCE_MEMORY_MS = 86_400_000
MAX_KEY_LENGTH = 200
MAX_WINDOW_SECONDS = 10 * 366 * 86_400

KeyWindow = tuple[str, float]
"""``(key, seconds)``: the dedupe key and its window."""


def check(
    debounce: KeyWindow | None, throttle: KeyWindow | None, *, job_id: str | None, delayed: bool
) -> list[str]:
    """Problems with the dedupe options of one call (empty when fine)."""
    problems: list[str] = []
    for name, value, low in (("debounce", debounce, "0 <="), ("throttle", throttle, "0 <")):
        if value is not None and not _valid(value, allow_zero=name == "debounce"):
            problems.append(
                f"{name} must be (key, seconds): a key of 1..{MAX_KEY_LENGTH} chars"
                f" and {low} seconds <= {MAX_WINDOW_SECONDS}, got {value!r}"
            )
    if debounce is not None and throttle is not None:
        problems.append("give either debounce or throttle, not both")
    if job_id is not None and (debounce is not None or throttle is not None):
        problems.append("job_id cannot be combined with debounce or throttle")
    if debounce is not None and delayed:
        problems.append("debounce sets the run time itself: do not give delay or at")
    return problems


def _valid(value: object, *, allow_zero: bool) -> bool:
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    key, seconds = value
    return (
        isinstance(key, str)
        and 0 < len(key) <= MAX_KEY_LENGTH
        and isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and (seconds > 0 or (allow_zero and seconds == 0))
        and seconds <= MAX_WINDOW_SECONDS
    )


def dedupe_for(
    job: NewJob, debounce: KeyWindow | None, throttle: KeyWindow | None, now: int
) -> Dedupe | None:
    if debounce is not None:
        return Dedupe("debounce", f"{job.task}:{debounce[0]}", job.run_at + DEBOUNCE_MEMORY_MS)
    if throttle is not None:
        return Dedupe("throttle", f"{job.task}:{throttle[0]}", now + round(throttle[1] * 1000))
    return None


async def insert(
    store: JobStore, dedupe_store: DedupeStore, jobs: Sequence[NewJob], dedupes: list[Dedupe | None]
) -> list[tuple[str, bool]]:
    """Insert ``jobs``: those with a key in one dedupe step, the others in one plain step.

    Per job, the id of the job it became (an existing one for a deduplicated
    call) and whether it was inserted.
    """
    plain = [i for i, d in enumerate(dedupes) if d is None]
    keyed = [(i, d) for i, d in enumerate(dedupes) if d is not None]
    answers: list[tuple[str, bool]] = [("", False)] * len(jobs)
    if plain:
        created = await store.enqueue([jobs[i] for i in plain])
        for i, was_created in zip(plain, created, strict=True):
            answers[i] = (jobs[i].id, was_created)
    if keyed:
        results = await dedupe_store.enqueue_deduped([(jobs[i], d) for i, d in keyed])
        for (i, _), answer in zip(keyed, results, strict=True):
            answers[i] = answer
    return answers
