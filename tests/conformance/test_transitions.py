"""The job state machine, as a table, against every backend's job store directly.

Each store applies these rules inside its own atomic step (a Python method
under a lock, one SQLite transaction, one Lua script), so they are written
once per store; this table is what keeps them one rule. A row is a starting
state, a transition and what must come of it: the job's state afterwards
and what the store answered. Every cell runs on every store, through the
``JobStore`` protocol alone (no app, no worker), on a manual clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from conveyor.clock import ManualClock
from conveyor.stores.backend import Backend
from conveyor.stores.base import (
    CancelResult,
    Cleaned,
    JobState,
    LeaseStatus,
    NewJob,
    Outcome,
    RemoveResult,
)
from conveyor.stores.flows import FlowJob
from tests.conformance.conftest import assert_counts_match_listings

QUEUE = "table"
LEASE_MS = 30_000
KEEP_MS = 3_600_000
MAX_STALLED = 1


@dataclass
class Held:
    """The job under test and what the table's steps need of it."""

    backend: Backend
    id: str = "job-1"
    token: str = "no-such-token"

    @property
    def clock(self) -> ManualClock:
        clock = self.backend.clock
        assert isinstance(clock, ManualClock)
        return clock

    def outcome(self, state: JobState, **fields: Any) -> Outcome:
        now = self.clock.now_ms()
        values: dict[str, Any] = {"finished_at": now, "expires_at": now + KEEP_MS}
        values.update(fields)
        return Outcome(self.id, self.token, QUEUE, state, **values)

    async def claim(self) -> int:
        _, claimed = await self.backend.jobs.exchange([], [QUEUE], 5, "w", LEASE_MS)
        for job in claimed:
            self.token = job.token
        return len(claimed)

    async def finish(self, outcome: Outcome) -> bool:
        accepted, _ = await self.backend.jobs.exchange([outcome], [QUEUE], 0, "w", LEASE_MS)
        return accepted[0]

    async def sweep(self) -> list[tuple[str, bool]]:
        self.clock.advance(LEASE_MS / 1000 + 1)
        now = self.clock.now_ms()
        stalled = await self.backend.jobs.sweep_stalled(now, KEEP_MS)
        return [(s.id, s.failed) for s in stalled]


# -- starting states ---------------------------------------------------------------


async def _enqueue(held: Held, delay_ms: int = 0) -> None:
    now = held.clock.now_ms()
    job = NewJob(held.id, QUEUE, "t", b"[]", b"{}", 0, now + delay_ms, now, MAX_STALLED)
    assert await held.backend.jobs.enqueue([job]) == [True]


async def _scheduled(held: Held) -> None:
    await _enqueue(held, delay_ms=60_000)


async def _waiting(held: Held) -> None:
    await _enqueue(held)


async def _active(held: Held) -> None:
    await _enqueue(held)
    assert await held.claim() == 1


async def _active_to_cancel(held: Held) -> None:
    await _active(held)
    assert await held.backend.jobs.cancel(held.id, held.clock.now_ms(), KEEP_MS) == (
        CancelResult.REQUESTED
    )


async def _active_stalled_once(held: Held) -> None:
    await _active(held)
    assert await held.sweep() == [(held.id, False)]
    assert await held.claim() == 1


async def _completed(held: Held) -> None:
    await _active(held)
    assert await held.finish(held.outcome(JobState.COMPLETED, result=b"1"))


async def _failed(held: Held) -> None:
    await _active(held)
    assert await held.finish(held.outcome(JobState.FAILED, error=b'{"type":"E"}'))


async def _cancelled(held: Held) -> None:
    await _enqueue(held)
    assert await held.backend.jobs.cancel(held.id, held.clock.now_ms(), KEEP_MS) == (
        CancelResult.CANCELLED
    )


async def _missing(held: Held) -> None:
    return None


START: dict[str, Callable[[Held], Awaitable[None]]] = {
    "scheduled": _scheduled,
    "waiting": _waiting,
    "active": _active,
    "active-to-cancel": _active_to_cancel,
    "active-stalled-once": _active_stalled_once,
    "completed": _completed,
    "failed": _failed,
    "cancelled": _cancelled,
    "missing": _missing,
}

# -- transitions (each returns what the store answered) ------------------------------


async def _claim(held: Held) -> Any:
    return await held.claim()


async def _claim_later(held: Held) -> Any:
    held.clock.advance(61)
    return await held.claim()


async def _complete(held: Held) -> Any:
    return await held.finish(held.outcome(JobState.COMPLETED, result=b"1"))


async def _fail(held: Held) -> Any:
    return await held.finish(held.outcome(JobState.FAILED, error=b'{"type":"E"}'))


async def _retry_later(held: Held) -> Any:
    run_at = held.clock.now_ms() + 5_000
    return await held.finish(held.outcome(JobState.SCHEDULED, run_at=run_at, error=b"{}"))


async def _release(held: Held) -> Any:
    return await held.backend.jobs.release([(held.id, held.token)], KEEP_MS)


async def _renew(held: Held) -> Any:
    return (await held.backend.jobs.renew([(held.id, held.token)], LEASE_MS)).get(held.id)


async def _check(held: Held) -> Any:
    return (await held.backend.jobs.check_leases([(held.id, held.token)])).get(held.id)


async def _cancel(held: Held) -> Any:
    return await held.backend.jobs.cancel(held.id, held.clock.now_ms(), KEEP_MS)


async def _admin_retry(held: Held) -> Any:
    return await held.backend.jobs.retry(held.id, held.clock.now_ms())


async def _remove(held: Held) -> Any:
    return await held.backend.jobs.remove(held.id)


async def _clean(held: Held) -> Any:
    record = await held.backend.jobs.get(held.id)
    state = JobState.COMPLETED if record is None else record.state
    held.clock.advance(1)
    return await held.backend.jobs.clean(QUEUE, state, held.clock.now_ms(), 100)


async def _sweep(held: Held) -> Any:
    return await held.sweep()


async def _promote(held: Held) -> Any:
    return await held.backend.jobs.promote(held.id, held.clock.now_ms())


async def _retry_failed(held: Held) -> Any:
    return await held.backend.jobs.retry_failed(QUEUE, 10, held.clock.now_ms())


async def _count_clean(held: Held) -> Any:
    """What ``clean`` would answer in the same place (the store deletes nothing)."""
    record = await held.backend.jobs.get(held.id)
    state = JobState.COMPLETED if record is None else record.state
    held.clock.advance(1)
    return Cleaned(await held.backend.jobs.count_clean(QUEUE, state, held.clock.now_ms(), 100))


TRANSITIONS: dict[str, Callable[[Held], Awaitable[Any]]] = {
    "claim": _claim,
    "claim-later": _claim_later,
    "complete": _complete,
    "fail": _fail,
    "retry-later": _retry_later,
    "release": _release,
    "renew": _renew,
    "check-lease": _check,
    "cancel": _cancel,
    "admin-retry": _admin_retry,
    "remove": _remove,
    "clean": _clean,
    "sweep": _sweep,
    "promote": _promote,
    "retry-failed": _retry_failed,
    "count-clean": _count_clean,
}


@dataclass(frozen=True)
class Then:
    """What a transition must give: the job's state after it (None: no such job), what
    the store answered, and record fields to check."""

    state: JobState | None
    answer: Any
    fields: dict[str, Any] = field(default_factory=dict)


S, W, A = JobState.SCHEDULED, JobState.WAITING, JobState.ACTIVE
DONE, FAILED, CANCELLED = JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED
LOST, TO_CANCEL = LeaseStatus.LOST, LeaseStatus.CANCEL
STALLED_TWICE = {"stalls": 2, "error_message": "job stalled 2 times"}


def _stays(state: JobState | None, answer: Any) -> Then:
    return Then(state, answer)


def _held(state: JobState) -> dict[str, Then]:
    """The rows a job nobody holds shares with every other such state."""
    return {
        "complete": _stays(state, False),
        "fail": _stays(state, False),
        "retry-later": _stays(state, False),
        "release": _stays(state, 0),
        "renew": _stays(state, LOST),
        "check-lease": _stays(state, LOST),
        "sweep": _stays(state, []),
        **_not_scheduled_or_failed(state),
    }


def _not_scheduled_or_failed(state: JobState | None) -> dict[str, Then]:
    """Promote and bulk retry leave every other state as it is."""
    return {"promote": _stays(state, False), "retry-failed": _stays(state, 0)}


TABLE: dict[str, dict[str, Then]] = {
    "scheduled": {
        **_held(S),
        "claim": _stays(S, 0),
        "claim-later": Then(A, 1, {"attempts": 1}),
        "cancel": Then(CANCELLED, CancelResult.CANCELLED),
        "admin-retry": _stays(S, False),
        "remove": Then(None, RemoveResult.REMOVED),
        "clean": Then(None, Cleaned(1)),
        "count-clean": Then(S, Cleaned(1)),
        "promote": Then(W, True, {"run_at": "now"}),  # and then a claim takes it at once
    },
    "waiting": {
        **_held(W),
        "claim": Then(A, 1, {"attempts": 1, "fence": 1}),
        "claim-later": Then(A, 1),
        "cancel": Then(CANCELLED, CancelResult.CANCELLED),
        "admin-retry": _stays(W, False),
        "remove": Then(None, RemoveResult.REMOVED),
        "clean": Then(None, Cleaned(1)),
        "count-clean": Then(W, Cleaned(1)),
    },
    "active": {
        "claim": _stays(A, 0),
        "claim-later": _stays(A, 0),
        "complete": Then(DONE, True, {"result": b"1"}),
        "fail": Then(FAILED, True),
        "retry-later": Then(S, True, {"attempts": 1}),
        "release": Then(W, 1, {"attempts": 0}),
        "renew": _stays(A, None),
        "check-lease": _stays(A, None),
        "cancel": Then(A, CancelResult.REQUESTED, {"cancel_requested": True}),
        "admin-retry": _stays(A, False),
        "remove": _stays(A, RemoveResult.ACTIVE),
        "clean": Then(A, Cleaned(1)),  # the store is never asked: the client refuses ACTIVE
        "count-clean": Then(A, Cleaned(1)),
        "sweep": Then(W, [("job-1", False)], {"stalls": 1, "attempts": 0}),
        **_not_scheduled_or_failed(A),
    },
    "active-to-cancel": {
        "claim": _stays(A, 0),
        "claim-later": _stays(A, 0),
        "complete": Then(DONE, True),  # the attempt finished first: its outcome stands
        "fail": Then(FAILED, True),
        "retry-later": Then(CANCELLED, True),  # cancel wins over a retry
        "release": Then(CANCELLED, 1),
        "renew": _stays(A, TO_CANCEL),
        "check-lease": _stays(A, TO_CANCEL),
        "cancel": _stays(A, CancelResult.REQUESTED),
        "admin-retry": _stays(A, False),
        "remove": _stays(A, RemoveResult.ACTIVE),
        "clean": Then(A, Cleaned(1)),
        "count-clean": Then(A, Cleaned(1)),
        "sweep": Then(CANCELLED, [("job-1", False)]),  # a stalled job to cancel ends cancelled
        **_not_scheduled_or_failed(A),
    },
    "active-stalled-once": {
        "complete": Then(DONE, True),
        "release": Then(W, 1, {"stalls": 1}),
        "sweep": Then(FAILED, [("job-1", True)], STALLED_TWICE),  # past max_stalled: failed
    },
    "completed": {
        **_held(DONE),
        "claim": _stays(DONE, 0),
        "claim-later": _stays(DONE, 0),
        "cancel": _stays(DONE, CancelResult.FINISHED),
        "admin-retry": _stays(DONE, False),
        "remove": Then(None, RemoveResult.REMOVED),
        "clean": Then(None, Cleaned(1)),
        "count-clean": Then(DONE, Cleaned(1)),
    },
    "failed": {
        **_held(FAILED),
        "claim": _stays(FAILED, 0),
        "claim-later": _stays(FAILED, 0),
        "cancel": _stays(FAILED, CancelResult.FINISHED),
        "admin-retry": Then(W, True, {"attempts": 0, "error": None}),
        "remove": Then(None, RemoveResult.REMOVED),
        "clean": Then(None, Cleaned(1)),
        "count-clean": Then(FAILED, Cleaned(1)),
        "retry-failed": Then(W, 1, {"attempts": 0, "error": None, "run_at": "now"}),
    },
    "cancelled": {
        **_held(CANCELLED),
        "claim": _stays(CANCELLED, 0),
        "claim-later": _stays(CANCELLED, 0),
        "cancel": _stays(CANCELLED, CancelResult.FINISHED),
        "admin-retry": Then(W, True),
        "remove": Then(None, RemoveResult.REMOVED),
        "clean": Then(None, Cleaned(1)),
        "count-clean": Then(CANCELLED, Cleaned(1)),
    },
    "missing": {
        **_held(JobState.COMPLETED),
        "claim": _stays(None, 0),
        "claim-later": _stays(None, 0),
        "complete": _stays(None, False),
        "fail": _stays(None, False),
        "retry-later": _stays(None, False),
        "renew": _stays(None, LOST),
        "check-lease": _stays(None, LOST),
        "release": _stays(None, 0),
        "sweep": _stays(None, []),
        "cancel": _stays(None, CancelResult.MISSING),
        "admin-retry": _stays(None, False),
        "remove": _stays(None, RemoveResult.MISSING),
        "clean": _stays(None, Cleaned(0)),
        "count-clean": _stays(None, Cleaned(0)),
        **_not_scheduled_or_failed(None),
    },
}

CELLS = [
    pytest.param(start, step, id=f"{start}--{step}")
    for start, row in TABLE.items()
    for step in row
    if not (step in ("clean", "count-clean") and start.startswith("active"))  # refused above
]


def test_every_state_meets_every_transition() -> None:
    """The table is whole: no starting state skips a transition (but the one noted)."""
    partial = {"active-stalled-once"}
    for start, row in TABLE.items():
        if start not in partial:
            assert set(row) == set(TRANSITIONS), start


@pytest.mark.parametrize(("start", "step"), CELLS)
async def test_transition(backend: Backend, start: str, step: str) -> None:
    held = Held(backend)
    await START[start](held)
    then = TABLE[start][step]
    answer = await TRANSITIONS[step](held)
    assert answer == then.answer
    record = await backend.jobs.get(held.id)
    assert (None if record is None else record.state) == then.state
    await assert_counts_match_listings(backend.jobs)
    for name, expected in then.fields.items():
        assert record is not None
        if name == "error_message":
            assert expected in msgspec.json.decode(record.error or b"{}")["message"]
        elif expected == "now":
            assert getattr(record, name) == held.clock.now_ms(), name
        else:
            assert getattr(record, name) == expected, name


# -- a flow parent, as its children end --------------------------------------------

PARENT = "parent-1"


async def _end_child(held: Held, child: str, how: str) -> None:
    """Claim ``child`` and end it ``how`` (completed, failed or cancelled)."""
    held.id = child
    if how == "cancelled":
        await held.backend.jobs.cancel(child, held.clock.now_ms(), KEEP_MS)
    else:
        _, claimed = await held.backend.jobs.exchange([], [QUEUE], 1, "w", LEASE_MS)
        assert [c.id for c in claimed] == [child]
        held.token = claimed[0].token
        state = JobState.COMPLETED if how == "completed" else JobState.FAILED
        assert await held.finish(held.outcome(state, result=b"1", error=b'{"type":"E"}'))
    await held.backend.flows.deliver([(QUEUE, child)])


FLOW_TABLE = {
    # (policy, how the first child ends, whether the second ends too) -> parent state
    ("fail", "completed", False): JobState.WAITING_CHILDREN,
    ("fail", "completed", True): JobState.WAITING,
    ("fail", "failed", False): JobState.FAILED,  # at once, the other child still pending
    ("fail", "cancelled", False): JobState.FAILED,
    ("ignore", "failed", False): JobState.WAITING_CHILDREN,
    ("ignore", "failed", True): JobState.WAITING,
    ("ignore", "cancelled", True): JobState.WAITING,
}


@pytest.mark.parametrize(
    ("policy", "how", "both"),
    [pytest.param(*key, id="-".join(map(str, key))) for key in FLOW_TABLE],
)
async def test_flow_parent_follows_its_policy(
    backend: Backend, policy: str, how: str, both: bool
) -> None:
    held = Held(backend)
    now = held.clock.now_ms()

    def job(job_id: str) -> NewJob:
        return NewJob(job_id, QUEUE, "t", b"[]", b"{}", 0, now, now, MAX_STALLED)

    children = [(QUEUE, "child-a"), (QUEUE, "child-b")]
    link = (QUEUE, PARENT)
    flow = [
        FlowJob(job(PARENT), None, children, policy, KEEP_MS),  # type: ignore[arg-type]
        FlowJob(job("child-a"), link),
        FlowJob(job("child-b"), link),
    ]
    assert (await backend.flows.add_flow(flow)).created
    await _end_child(held, "child-a", how)
    if both:
        await _end_child(held, "child-b", "completed")
    parent = await backend.jobs.get(PARENT)
    assert parent is not None
    assert parent.state is FLOW_TABLE[policy, how, both]
    if parent.state is JobState.FAILED:
        error = msgspec.json.decode(parent.error or b"{}")
        assert error["type"] == "ChildFailedError"
        assert "child-a" in error["message"]
    records = await backend.flows.children(QUEUE, PARENT)
    assert records is not None
    assert (records[0].id, records[0].state) == ("child-a", JobState(how))
