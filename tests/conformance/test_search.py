"""Searching jobs on every store: by id, id prefix, task, payload field, error type and word.

Each criterion is an index, so results are exact (every job that matches,
nothing else) and each call is bounded (it examines at most
``SEARCH_CANDIDATES`` entries of the index it walks). An index entry lives
exactly as long as what it indexes: a deleted job (by retention, a count
trim, clean or remove) leaves none behind, and a failed job's error entries
go when it is retried. A stale entry would show here: a job created again
with the same id would be found by its predecessor's task, field or error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import pytest

from conveyor import BadInputError, JobState
from conveyor.stores.backend import Backend
from conveyor.stores.base import CancelResult, JobStore, NewJob, Outcome, Page
from conveyor.stores.dedupe import Dedupe
from conveyor.stores.flows import FlowJob
from conveyor.stores.search import (
    SEARCH_CANDIDATES,
    JobQuery,
    error_keys,
    error_type_key,
    error_word_key,
    field_key,
)
from tests.conformance.conftest import START_MS, manual_clock

Q = "search"
KEEP_MS = 3_600_000


def job(
    job_id: str,
    created_at: int = START_MS,
    *,
    queue: str = Q,
    task: str = "orders.ship",
    keys: tuple[str, ...] = (),
) -> NewJob:
    return NewJob(job_id, queue, task, b"[[],{}]", b"{}", 0, START_MS, created_at, 1, list(keys))


def error(kind: str, message: str) -> bytes:
    return msgspec.json.encode({"type": kind, "message": message, "traceback": "..."})


async def fail(
    backend: Backend, ids: set[str], err: bytes, keep: int | None = None, queue: str = Q
) -> None:
    """Claim the waiting jobs of ``queue`` and fail those in ``ids`` (complete the others),
    a millisecond after what finished before."""
    store, clock = backend.jobs, manual_clock(backend)
    clock.advance(0.001)
    now = clock.now_ms()
    _, claimed = await store.exchange([], [queue], 1_000, "w", 30_000)
    outcomes = [
        Outcome(
            c.id,
            c.token,
            queue,
            JobState.FAILED if c.id in ids else JobState.COMPLETED,
            now,
            error=err if c.id in ids else None,
            expires_at=now + KEEP_MS,
            keep=keep,
        )
        for c in claimed
    ]
    accepted, _ = await store.exchange(outcomes, [queue], 0, "w", 30_000)
    assert all(accepted)


async def every_match(store: JobStore, query: JobQuery, limit: int = 50) -> list[str]:
    """The ids of every page of a search, checking each page's bound."""
    found: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = await store.search(query, cursor, limit)
        assert len(page.records) <= limit
        found += [r.id for r in page.records]
        if page.next is None:
            return found
        cursor = page.next
    raise AssertionError("a search that never ends")


def ids(page: Page) -> list[str]:
    return [r.id for r in page.records]


async def test_an_exact_id_finds_its_job_when_the_other_criteria_hold(backend: Backend) -> None:
    store = backend.jobs
    await store.enqueue([job("order-7"), job("order-77")])
    assert ids(await store.search(JobQuery(job_id="order-7"), None, 10)) == ["order-7"]
    narrowed = JobQuery(job_id="order-7", state=JobState.WAITING, task="orders.ship")
    assert ids(await store.search(narrowed, None, 10)) == ["order-7"]
    other = JobQuery(job_id="order-7", state=JobState.FAILED)
    assert ids(await store.search(other, None, 10)) == []
    assert ids(await store.search(JobQuery(job_id="order-"), None, 10)) == []


async def test_an_id_prefix_finds_exactly_the_ids_that_start_with_it(backend: Backend) -> None:
    store = backend.jobs
    names = ["01a2f", "01a2e", "01a3", "01a", "01", "1a2", "01a2"]
    await store.enqueue(
        [job(n, START_MS + i, queue="qa" if i % 2 else Q) for i, n in enumerate(names)]
    )
    everywhere = await every_match(store, JobQuery(job_id_prefix="01a2"), limit=2)
    assert everywhere == ["01a2f", "01a2e", "01a2"]  # by id, highest first
    in_queue = await every_match(store, JobQuery(job_id_prefix="01a", queue="qa"), limit=2)
    assert in_queue == ["01a2e", "01a"]


async def test_a_task_finds_its_jobs_and_no_task_whose_name_it_begins(backend: Backend) -> None:
    store = backend.jobs
    await store.enqueue(
        [job(f"ship-{n}", START_MS + n) for n in range(5)]
        + [job(f"shipx-{n}", START_MS + n, task="orders.shipx") for n in range(3)]
    )
    found = await every_match(store, JobQuery(task="orders.ship"), limit=2)
    assert found == [f"ship-{n}" for n in reversed(range(5))]


async def test_a_payload_field_finds_exactly_the_jobs_enqueued_with_that_value(
    backend: Backend,
) -> None:
    store = backend.jobs
    k42, k4 = field_key("customer_id", "42"), field_key("customer_id", "4")
    await store.enqueue(
        [
            job("a", START_MS + 1, keys=("customer_id=42", "order.id=9")),
            job("b", START_MS + 2, keys=("customer_id=4",)),
            job("c", START_MS + 3, keys=("customer_id=42",), queue="other"),
            job("d", START_MS + 4),
        ]
    )
    assert await every_match(store, JobQuery(keys=(k42,))) == ["c", "a"]
    assert await every_match(store, JobQuery(keys=(k4,))) == ["b"]
    assert await every_match(store, JobQuery(keys=(k42,), queue=Q)) == ["a"]
    both = JobQuery(keys=(k42, field_key("order.id", "9")))
    assert await every_match(store, both) == ["a"]


async def test_a_failed_job_is_found_by_its_error_type_and_message_words(backend: Backend) -> None:
    store = backend.jobs
    await store.enqueue([job(f"j{n}", START_MS + n) for n in range(4)])
    await fail(backend, {"j1", "j3"}, error("SmtpError", "Mailbox FULL for customer_42"))
    by_type = JobQuery(keys=(error_type_key("SmtpError"),))
    assert await every_match(store, by_type) == ["j3", "j1"]
    by_word = JobQuery(keys=(error_word_key("mailbox"),))
    assert await every_match(store, by_word) == ["j3", "j1"]
    assert await every_match(store, JobQuery(keys=(error_word_key("customer_42"),))) == ["j3", "j1"]
    assert await every_match(store, JobQuery(keys=(error_word_key("mail"),))) == []
    assert await every_match(store, JobQuery(keys=(error_type_key("Smtp"),))) == []
    assert error_keys(error("SmtpError", "x")) == ["e:SmtpError"]  # too short to be a word


async def test_a_retried_job_leaves_the_error_index_and_a_new_failure_enters_it(
    backend: Backend,
) -> None:
    store = backend.jobs
    now = manual_clock(backend).now_ms()
    await store.enqueue([job("j1"), job("j2", START_MS + 1)])
    await fail(backend, {"j1", "j2"}, error("SmtpError", "mailbox full"))
    assert await store.retry("j1", now)
    assert await store.retry_failed(Q, 10, now) == 1
    assert await every_match(store, JobQuery(keys=(error_type_key("SmtpError"),))) == []
    assert await every_match(store, JobQuery(keys=(error_word_key("mailbox"),))) == []
    await fail(backend, {"j2"}, error("DnsError", "no such host"))
    assert await every_match(store, JobQuery(keys=(error_type_key("DnsError"),))) == ["j2"]
    assert await every_match(store, JobQuery(keys=(error_type_key("SmtpError"),))) == []


async def test_criteria_combine_and_every_result_holds_them_all(backend: Backend) -> None:
    store = backend.jobs
    key = field_key("customer_id", "42")
    await store.enqueue(
        [job(f"n{n}", START_MS + n, keys=("customer_id=42",) if n % 2 else ()) for n in range(10)]
        + [job("other-task", START_MS + 20, task="orders.bill", keys=("customer_id=42",))]
    )
    await fail(backend, {"n3", "n7", "n8"}, error("SmtpError", "mailbox full"))
    query = JobQuery(
        task="orders.ship",
        state=JobState.FAILED,
        keys=(key, error_type_key("SmtpError")),
    )
    assert await every_match(store, query, limit=1) == ["n7", "n3"]
    prefix = JobQuery(job_id_prefix="n", state=JobState.COMPLETED, keys=(key,))
    assert await every_match(store, prefix) == ["n9", "n5", "n1"]


async def test_a_search_examines_a_bounded_number_of_candidates_per_call(
    backend: Backend,
) -> None:
    # The task's index holds more jobs than one call examines, and only the oldest
    # match: the first call comes back empty with a cursor, the next finds them.
    store = backend.jobs
    total = SEARCH_CANDIDATES + 200
    await store.enqueue([job(f"j{n:05}", START_MS + n) for n in range(total)])
    for n in range(3):
        assert await store.cancel(f"j{n:05}", START_MS, KEEP_MS) is CancelResult.CANCELLED
    query = JobQuery(task="orders.ship", state=JobState.CANCELLED)
    first = await store.search(query, None, 50)
    assert first.records == [] and first.next is not None
    second = await store.search(query, first.next, 50)
    assert ids(second) == ["j00002", "j00001", "j00000"]
    assert second.next is None


async def test_limit_and_cursor_page_through_the_matches(backend: Backend) -> None:
    store = backend.jobs
    await store.enqueue([job(f"j{n:02}", START_MS + n // 3) for n in range(12)])
    first = await store.search(JobQuery(task="orders.ship"), None, 5)
    assert ids(first) == ["j11", "j10", "j09", "j08", "j07"]
    assert await every_match(store, JobQuery(task="orders.ship"), limit=5) == [
        f"j{n:02}" for n in reversed(range(12))
    ]


async def test_a_query_with_no_criterion_or_a_bad_cursor_is_refused(backend: Backend) -> None:
    with pytest.raises(BadInputError):
        JobQuery(queue=Q, state=JobState.WAITING).driver()
    with pytest.raises(BadInputError):
        await backend.jobs.search(JobQuery(task="t"), "%%%", 5)
    with pytest.raises(BadInputError):
        error_word_key("no")


# -- a deleted job leaves no index entry --------------------------------------------------


OLD = job("reused", keys=("customer_id=1",), task="orders.old")
NEW = job("reused", START_MS + 10, keys=("customer_id=2",), task="orders.new")
OLD_ERROR = error("SmtpError", "mailbox full")


async def _retention(backend: Backend) -> None:
    clock = manual_clock(backend)
    clock.advance(KEEP_MS / 1000 + 1)
    assert await backend.jobs.purge_expired(clock.now_ms()) >= 1


async def _count_trim(backend: Backend) -> None:
    await backend.jobs.enqueue([job("newer", START_MS + 5)])
    await fail(backend, {"newer"}, error("DnsError", "no host"), keep=1)  # keeps the newest


async def _clean(backend: Backend) -> None:
    manual_clock(backend).advance(1)
    before = manual_clock(backend).now_ms()
    cleaned = await backend.jobs.clean(Q, JobState.FAILED, before, 100)
    assert cleaned.removed == 1


async def _remove(backend: Backend) -> None:
    assert (await backend.jobs.remove("reused")).value == "removed"


DELETIONS: dict[str, Callable[[Backend], Awaitable[None]]] = {
    "retention": _retention,
    "count-trim": _count_trim,
    "clean": _clean,
    "remove": _remove,
}


@pytest.mark.parametrize("deletion", DELETIONS)
async def test_a_deleted_job_leaves_no_index_entry(backend: Backend, deletion: str) -> None:
    store = backend.jobs
    await store.enqueue([OLD])  # one job alone: a store may write it by another path
    assert await every_match(store, JobQuery(task="orders.old")) == ["reused"]
    await fail(backend, {"reused"}, OLD_ERROR)
    await DELETIONS[deletion](backend)
    assert await store.get("reused") is None
    assert await store.events_of("reused", 10) == []
    await store.enqueue([NEW])  # the same id, in the same queue, nothing else alike
    gone = [
        JobQuery(task="orders.old"),
        JobQuery(keys=(field_key("customer_id", "1"),)),
        JobQuery(keys=(error_type_key("SmtpError"),)),
        JobQuery(keys=(error_word_key("mailbox"),)),
    ]
    for query in gone:
        assert await every_match(store, query) == [], query
    assert await every_match(store, JobQuery(job_id_prefix="reuse")) == ["reused"]
    assert await every_match(store, JobQuery(task="orders.new")) == ["reused"]
    assert await every_match(store, JobQuery(keys=(field_key("customer_id", "2"),))) == ["reused"]
    listed = await store.list_page(Q, JobState.WAITING, None, 10)
    assert [(r.id, r.task) for r in listed.records] == [("reused", "orders.new")]


async def test_a_debounced_job_is_found_by_its_latest_fields_only(backend: Backend) -> None:
    dedupe = backend.dedupe
    first = job("late", keys=("customer_id=1",))
    second = job("late-2", START_MS + 1, keys=("customer_id=2",))
    until = START_MS + 60_000
    await dedupe.enqueue_deduped([(first, Dedupe("debounce", "k", until))])
    answer = await dedupe.enqueue_deduped([(second, Dedupe("debounce", "k", until))])
    assert answer == [("late", False)]
    assert await every_match(backend.jobs, JobQuery(keys=(field_key("customer_id", "1"),))) == []
    found = await every_match(backend.jobs, JobQuery(keys=(field_key("customer_id", "2"),)))
    assert found == ["late"]


async def test_the_jobs_of_a_flow_are_found_by_their_fields_and_task(backend: Backend) -> None:
    parent = job("report", keys=("customer_id=7",), task="reports.build")
    child = job("part", START_MS + 1, keys=("customer_id=7", "part=1"), task="reports.part")
    await backend.flows.add_flow(
        [FlowJob(parent, children=[(Q, "part")]), FlowJob(child, parent=(Q, "report"))]
    )
    found = await every_match(backend.jobs, JobQuery(keys=(field_key("customer_id", "7"),)))
    assert found == ["part", "report"]
    assert await every_match(backend.jobs, JobQuery(keys=(field_key("part", "1"),))) == ["part"]
    assert await every_match(backend.jobs, JobQuery(task="reports.part")) == ["part"]
