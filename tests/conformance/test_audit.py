"""The audit log on every store: appended entries read back newest first, bounded."""

from __future__ import annotations

import pytest

from conveyor import BadInputError
from conveyor.stores.audit import AuditEntry
from conveyor.stores.backend import Backend
from tests.conformance.conftest import START_MS, manual_clock
from tests.conftest import AppFactory

DAY_MS = 86_400_000


def entry(n: int, at: int = START_MS) -> AuditEntry:
    return AuditEntry(at, "ops-key", "jobs.clean", f"queue:q{n}", b'{"removed":%d}' % n, f"req-{n}")


async def test_entries_page_back_newest_first(backend: Backend) -> None:
    store = backend.audit
    ids = [await store.append(entry(n), 100, DAY_MS) for n in range(7)]
    assert len(set(ids)) == 7
    first = await store.page(None, 3)
    assert [e.target for e in first.entries] == ["queue:q6", "queue:q5", "queue:q4"]
    assert first.entries[0] == AuditEntry(
        START_MS, "ops-key", "jobs.clean", "queue:q6", b'{"removed":6}', "req-6", ids[6]
    )
    second = await store.page(first.next, 3)
    third = await store.page(second.next, 3)
    assert [e.target for e in second.entries + third.entries] == [
        "queue:q3",
        "queue:q2",
        "queue:q1",
        "queue:q0",
    ]
    assert third.next is None


async def test_the_log_keeps_the_newest_entries_up_to_its_count(backend: Backend) -> None:
    for n in range(6):
        await backend.audit.append(entry(n), 4, DAY_MS)
    page = await backend.audit.page(None, 10)
    assert [e.target for e in page.entries] == ["queue:q5", "queue:q4", "queue:q3", "queue:q2"]


async def test_entries_older_than_the_age_go_when_the_next_is_written(backend: Backend) -> None:
    clock = manual_clock(backend)
    await backend.audit.append(entry(0, clock.now_ms()), 100, DAY_MS)
    clock.advance(3600)
    await backend.audit.append(entry(1, clock.now_ms()), 100, DAY_MS)
    clock.advance(86_400 - 1800)
    await backend.audit.append(entry(2, clock.now_ms()), 100, DAY_MS)
    page = await backend.audit.page(None, 10)
    assert [e.target for e in page.entries] == ["queue:q2", "queue:q1"]


async def test_the_app_records_an_action_and_reads_it_back(make_app: AppFactory) -> None:
    app = make_app()
    recorded = await app.audit.record(
        "ops-key", "jobs.retry_failed", "queue:emails", {"retried": 12}, request_id="r-1"
    )
    page = await app.audit.page()
    assert page.entries == [recorded]
    assert (recorded.actor, recorded.counts, recorded.request_id) == (
        "ops-key",
        {"retried": 12},
        "r-1",
    )
    with pytest.raises(BadInputError):
        await app.audit.record("", "jobs.clean", "queue:emails")
    with pytest.raises(BadInputError):
        await app.audit.page(cursor="x1")
