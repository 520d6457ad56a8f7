"""Listing jobs by state, page by page, on every store (through the ``JobStore`` protocol).

A page is newest first by ``(created_at, id)`` and its cursor is where it
stopped, so jobs enqueued or moved while an operator pages never make a page
repeat or skip an older job.
"""

from __future__ import annotations

import pytest

from conveyor import BadInputError, JobState
from conveyor.stores.backend import Backend
from conveyor.stores.base import CancelResult, JobStore, NewJob, Outcome
from tests.conformance.conftest import START_MS, manual_clock

Q = "pages"
W = JobState.WAITING


def job(job_id: str, created_at: int, *, queue: str = Q, task: str = "t", delay: int = 0) -> NewJob:
    return NewJob(job_id, queue, task, b"[[],{}]", b"{}", 0, START_MS + delay, created_at, 1)


async def walk_pages(
    store: JobStore, queue: str | None, state: JobState, limit: int
) -> list[list[str]]:
    """Every page of a listing, as ids."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_page(queue, state, cursor, limit)
        assert len(page.records) <= limit
        pages.append([r.id for r in page.records])
        if page.next is None:
            return pages
        cursor = page.next


def newest_first(jobs: list[NewJob]) -> list[str]:
    return [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)]


async def test_a_listing_is_newest_first_by_creation_time_then_id(backend: Backend) -> None:
    jobs = [
        job("b", START_MS),
        job("a", START_MS),
        job("c", START_MS - 5),
        job("z", START_MS - 10),
        job("m", START_MS + 3),
    ]
    assert await backend.jobs.enqueue(jobs) == [True] * 5
    page = await backend.jobs.list_page(Q, W, None, 10)
    assert [r.id for r in page.records] == ["m", "b", "a", "c", "z"]
    assert page.next is None


async def test_pages_cover_a_state_once_each_without_gaps(backend: Backend) -> None:
    # Ties on created_at (a bulk enqueue stamps one time) are broken by id.
    jobs = [job(f"job-{n:02}", START_MS + n // 4) for n in range(23)]
    await backend.jobs.enqueue(jobs)
    pages = await walk_pages(backend.jobs, Q, W, 5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == newest_first(jobs)


async def test_a_job_enqueued_between_pages_never_makes_one_repeat_or_skip(
    backend: Backend,
) -> None:
    jobs = [job(f"job-{n}", START_MS + n) for n in range(9)]
    await backend.jobs.enqueue(jobs)
    first = await backend.jobs.list_page(Q, W, None, 3)
    assert [r.id for r in first.records] == ["job-8", "job-7", "job-6"]
    # Newer than the whole listing, tied with the cursor on both sides, and older.
    await backend.jobs.enqueue(
        [
            job("job-99", START_MS + 100),
            job("job-6a", START_MS + 6),  # after job-6 by id: before the cursor, not shown
            job("job-5z", START_MS + 6),  # before job-6 by id: next page
            job("job-00", START_MS - 1),
        ]
    )
    rest: list[str] = []
    cursor = first.next
    while cursor is not None:
        page = await backend.jobs.list_page(Q, W, cursor, 3)
        rest += [r.id for r in page.records]
        cursor = page.next
    assert rest == ["job-5z", "job-5", "job-4", "job-3", "job-2", "job-1", "job-0", "job-00"]


async def test_a_job_moved_between_pages_never_makes_one_repeat_or_skip(backend: Backend) -> None:
    store = backend.jobs
    now = manual_clock(backend).now_ms()
    await store.enqueue([job(f"job-{n}", START_MS + n) for n in range(8)])
    first = await store.list_page(Q, W, None, 3)
    assert [r.id for r in first.records] == ["job-7", "job-6", "job-5"]
    # A shown job leaves and comes back; an unshown one leaves for good.
    assert await store.cancel("job-6", now, 60_000) is CancelResult.CANCELLED
    assert await store.retry("job-6", now)
    assert await store.cancel("job-2", now, 60_000) is CancelResult.CANCELLED
    second = await store.list_page(Q, W, first.next, 3)
    third = await store.list_page(Q, W, second.next, 3)
    assert [r.id for r in second.records] == ["job-4", "job-3", "job-1"]
    assert [r.id for r in third.records] == ["job-0"]
    assert third.next is None


async def test_a_page_of_every_queue_merges_them_newest_first(backend: Backend) -> None:
    jobs = [
        job(f"{q}-{n}", START_MS + 3 * n + i, queue=q)
        for i, q in enumerate("abc")
        for n in range(7)
    ]
    await backend.jobs.enqueue(jobs)
    pages = await walk_pages(backend.jobs, None, W, 4)
    assert [i for p in pages for i in p] == newest_first(jobs)
    assert await walk_pages(backend.jobs, "b", W, 4) == [
        ["b-6", "b-5", "b-4", "b-3"],
        ["b-2", "b-1", "b-0"],
    ]


async def test_each_state_lists_its_own_jobs(backend: Backend) -> None:
    store = backend.jobs
    await store.enqueue([job("later", START_MS, delay=60_000), job("now-1", START_MS)])
    await store.enqueue([job("now-2", START_MS + 1)])
    _, claimed = await store.exchange([], [Q], 1, "w", 30_000)
    (held,) = claimed
    done = Outcome(held.id, held.token, Q, JobState.COMPLETED, START_MS, result=b"1")
    await store.exchange([done], [Q], 0, "w", 30_000)
    listed = {
        state: [r.id for r in (await store.list_page(Q, state, None, 10)).records]
        for state in JobState
    }
    assert listed[JobState.SCHEDULED] == ["later"]
    assert listed[JobState.WAITING] == ["now-2"]
    assert listed[JobState.COMPLETED] == ["now-1"]
    assert listed[JobState.ACTIVE] == listed[JobState.FAILED] == []


async def test_a_cursor_no_page_gave_is_refused(backend: Backend) -> None:
    with pytest.raises(BadInputError):
        await backend.jobs.list_page(Q, W, "not a cursor", 5)
