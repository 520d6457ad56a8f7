"""Flows on every store: parents that wait for children, chains, groups, failure policies."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conveyor import (
    BadInputError,
    ChildResult,
    ConflictError,
    InvalidArgumentsError,
    JobFailedError,
    JobState,
    NonRetryableError,
    NotFoundError,
    current_job,
)
from conveyor.stores.base import now_ms
from conveyor.stores.search import error_keys
from tests.conftest import AppFactory


async def test_parent_receives_the_results_of_its_1000_children(make_app: AppFactory) -> None:
    app = make_app(concurrency=100, claim_batch=200)

    @app.task(queue="parts")
    async def square(n: int) -> int:
        return n * n

    @app.task
    async def total(label: str) -> list[object]:
        children = current_job().children
        assert [c.job_id for c in children] == flow.child_ids
        results = current_job().children_results()
        return [label, len(results), sum(results)]

    flow = await app.flows.add(total.call("sum"), children=[square.call(n) for n in range(1000)])
    assert flow.created and flow.job.status is JobState.WAITING_CHILDREN
    assert len(flow.child_ids) == 1000
    assert (await app.jobs.get(flow.id)).status is JobState.WAITING_CHILDREN
    stats = await app.work(burst=True)
    assert stats.completed == 1001
    assert await flow.wait(timeout=10) == ["sum", 1000, sum(n * n for n in range(1000))]
    children = await flow.children()
    assert [c.result for c in children] == [n * n for n in range(1000)]
    assert all(c.ok and c.queue == "parts" for c in children)


async def test_parent_waits_until_its_last_child_finishes(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="slow")
    async def part(n: int) -> int:
        return n

    @app.task
    async def collect() -> list[int]:
        return [c.result for c in current_job().children]

    flow = await app.flows.add(collect.call(), children=[part.call(1), part.call(2)])
    assert (await app.work(queues=["default"], burst=True)).processed == 0  # not claimable yet
    assert (await app.work(queues=["slow"], burst=True)).completed == 2
    assert (await flow.job.refresh()).status is JobState.WAITING
    assert (await app.work(queues=["default"], burst=True)).completed == 1
    assert await flow.wait(timeout=5) == [1, 2]


async def test_chain_of_three_passes_each_result_on(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def fetch(n: int) -> int:
        return n + 1

    @app.task(queue="other")
    async def double(previous: int) -> int:
        return previous * 2

    @app.task
    async def describe(previous: int, unit: str) -> str:
        return f"{previous} {unit}"

    flow = await app.flows.chain(fetch.call(4), double.step(), describe.step(unit="apples"))
    assert flow.job.task == describe.name
    await app.work(burst=True)
    assert await flow.wait(timeout=5) == "10 apples"


async def test_a_failed_step_fails_the_rest_of_the_chain(make_app: AppFactory) -> None:
    app = make_app()
    ran: list[str] = []

    @app.task
    async def first() -> int:
        raise NonRetryableError("no data")

    @app.task
    async def middle(previous: int) -> int:
        ran.append("middle")
        return previous

    @app.task
    async def last(previous: int) -> int:
        ran.append("last")
        return previous

    flow = await app.flows.chain(first.call(), middle.step(), last.step())
    await app.work(burst=True)
    with pytest.raises(JobFailedError) as failed:
        await flow.wait(timeout=5)
    assert failed.value.error_type == "ChildFailedError"
    assert f"child job {flow.id}.0 (queue default) failed: ChildFailedError" in str(failed.value)
    middle_job = await app.jobs.get(f"{flow.id}.0")
    assert middle_job.status is JobState.FAILED
    assert middle_job.error is not None and "NonRetryableError: no data" in middle_job.error.message
    assert ran == []


async def _group_with_one_failure(make_app: AppFactory, policy: Any) -> Any:
    app = make_app()

    @app.task(queue="members")
    async def member(n: int) -> int:
        if n == 2:
            raise NonRetryableError(f"member {n} broke")
        return n * 10

    @app.task
    async def aggregate(results: list[int]) -> dict[str, Any]:
        failures = [(c.job_id, c.state, c.error) for c in current_job().children if not c.ok]
        return {"sum": sum(results), "results": results, "failures": len(failures)}

    flow = await app.flows.group(
        [member.call(n) for n in range(4)], then=aggregate.step(), on_child_failure=policy
    )
    await app.work(burst=True)
    return app, flow


async def test_group_member_failure_fails_the_group_under_fail(make_app: AppFactory) -> None:
    _, flow = await _group_with_one_failure(make_app, "fail")
    with pytest.raises(JobFailedError) as failed:
        await flow.wait(timeout=5)
    assert failed.value.error_type == "ChildFailedError"
    assert f"child job {flow.id}.2 (queue members) failed" in str(failed.value)
    assert "NonRetryableError: member 2 broke" in str(failed.value)
    assert (await flow.job.refresh()).attempts == 0  # it never ran


async def test_a_parent_failed_by_its_child_is_found_by_every_word_of_its_error(
    make_app: AppFactory,
) -> None:
    # The parent's error is written by the store (on PostgreSQL in SQL, with the store's
    # own tokenizer): its words must be those stores/search.py finds, letters beyond ASCII
    # and their case included, whatever the database's locale.
    app = make_app()

    @app.task(queue="members")
    async def pay(customer: str) -> str:
        if customer != "ok":
            raise NonRetryableError(f"Überweisung für {customer} abgelehnt: ÆRØ-Konto")
        return customer

    @app.task
    async def settle(results: list[str]) -> int:
        return len(results)

    flow = await app.flows.group(
        [pay.call("ok"), pay.call("İstanbul Şirketi")], then=settle.step(), on_child_failure="fail"
    )
    await app.work(burst=True)
    with pytest.raises(JobFailedError):
        await flow.wait(timeout=5)
    parent = await flow.job.refresh()
    assert parent.error is not None and parent.error.type == "ChildFailedError"
    error = msgspec.json.encode({"type": parent.error.type, "message": parent.error.message})
    words = [key.removeprefix("w:") for key in error_keys(error) if key.startswith("w:")]
    assert {"überweisung", "für", "abgelehnt", "ærø", "şirketi"} <= set(words)
    for word in words:
        found = await app.jobs.search(error_word=word, state="failed")
        assert flow.job.id in [job.id for job in found.jobs], word
    # A letter the store's tokenizer does not know splits no word into a wrong one.
    assert (await app.jobs.search(error_word="berweisung")).jobs == []


async def test_group_member_failure_is_skipped_under_ignore(make_app: AppFactory) -> None:
    app, flow = await _group_with_one_failure(make_app, "ignore")
    assert await flow.wait(timeout=5) == {"sum": 40, "results": [0, 10, 30], "failures": 1}
    children = await app.flows.children(flow.id)
    assert [c.state for c in children] == [JobState.COMPLETED] * 2 + [
        JobState.FAILED,
        JobState.COMPLETED,
    ]
    broken = children[2]
    assert isinstance(broken, ChildResult) and not broken.ok and broken.result is None
    assert broken.error is not None and broken.error.type == "NonRetryableError"


async def test_retried_child_reports_once_with_its_final_result(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.task(retries=2, backoff=0)
    async def flaky() -> str:
        attempts.append(current_job().attempt)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "finally"

    @app.task
    async def parent() -> list[Any]:
        return [(c.state, c.result) for c in current_job().children]

    flow = await app.flows.add(parent.call(), children=[flaky.call()])
    await app.work(burst=True)
    assert await flow.wait(timeout=5) == [["completed", "finally"]]
    assert attempts == [1, 2, 3]


async def test_cancelled_child_fails_its_parent_under_fail(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="parts")
    async def part() -> None:
        return None

    @app.task
    async def parent() -> None:
        return None

    flow = await app.flows.add(parent.call(), children=[part.call(), part.call()])
    await app.jobs.cancel(flow.child_ids[1])
    await app.flows.store.repair(now_ms() + 60_000)  # Redis: the sweep delivers a cancel
    await app.work(burst=True)
    with pytest.raises(JobFailedError) as failed:
        await flow.wait(timeout=5)
    assert f"child job {flow.child_ids[1]} (queue parts) was cancelled" in str(failed.value)


async def test_a_delivery_lost_after_the_child_finished_is_repaired(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that dies between a child's finish and its delivery loses nothing."""
    app = make_app()

    @app.task(queue="parts")
    async def part(n: int) -> int:
        return n

    @app.task
    async def parent() -> list[int]:
        return current_job().children_results()

    flow = await app.flows.add(parent.call(), children=[part.call(n) for n in range(3)])

    async def crashed(children: Any) -> int:
        return 0

    store = app.flows.store
    with monkeypatch.context() as patch:
        patch.setattr(store, "deliver", crashed)
        assert (await app.work(queues=["parts"], burst=True)).completed == 3
    await store.repair(now_ms() + 60_000)
    await store.repair(now_ms() + 60_000)  # twice: still once per child
    await app.work(burst=True)
    assert await flow.wait(timeout=5) == [0, 1, 2]


async def test_worker_stopping_mid_flow_leaves_the_rest_to_the_next(
    make_app: AppFactory,
) -> None:
    app = make_app(concurrency=1, claim_batch=1)
    done: list[int] = []

    @app.task(queue="parts")
    async def part(n: int) -> int:
        done.append(n)
        if len(done) == 2:
            worker.stop()
        return n

    @app.task
    async def parent() -> int:
        return sum(current_job().children_results())

    flow = await app.flows.add(parent.call(), children=[part.call(n) for n in range(5)])
    worker = app.worker(queues=["parts", "default"])
    await worker.run()
    assert (await flow.job.refresh()).status is JobState.WAITING_CHILDREN
    await app.work(burst=True)
    assert await flow.wait(timeout=5) == 10
    assert sorted(done) == [0, 1, 2, 3, 4]


async def test_adding_a_flow_again_with_its_root_id_writes_nothing(make_app: AppFactory) -> None:
    """While its root exists, adding the flow again writes nothing; once its jobs are
    removed, the same ids make a new flow, counted anew (its old rows went with them)."""
    app = make_app()

    @app.task
    async def part(n: int) -> int:
        return n

    @app.task
    async def parent() -> int:
        return sum(current_job().children_results())

    def report(a: int, b: int) -> Any:
        return app.flows.add(
            parent.options(job_id="report-7").call(), children=[part.call(a), part.call(b)]
        )

    first = await report(1, 2)
    again = await report(1, 2)
    assert first.created and not again.created
    assert again.id == "report-7" and again.job.status is JobState.WAITING_CHILDREN
    assert first.child_ids == ["report-7.0", "report-7.1"]
    assert (await app.work(burst=True)).completed == 3
    assert await first.wait(timeout=5) == 3
    for job_id in ["report-7", *first.child_ids]:
        await app.jobs.remove(job_id)
    afresh = await report(10, 20)
    assert afresh.created and afresh.job.status is JobState.WAITING_CHILDREN
    assert (await app.work(burst=True)).completed == 3
    assert await afresh.wait(timeout=5) == 30


async def test_cancelling_a_waiting_parent_cancels_it(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="parts")
    async def part() -> int:
        return 1

    @app.task
    async def parent() -> int:
        return 0

    flow = await app.flows.add(parent.call(), children=[part.call()])
    await flow.job.cancel()
    await app.work(burst=True)
    assert (await flow.job.refresh()).status is JobState.CANCELLED
    assert [c.state for c in await flow.children()] == [JobState.COMPLETED]


async def test_bad_flows_are_refused_and_nothing_is_written(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    async def part(n: int) -> int:
        return n

    @app.task
    async def parent() -> None:
        return None

    @app.task
    async def step(previous: int, scale: int) -> int:
        return previous * scale

    bad: list[Any] = [
        app.flows.add(parent.call(), children=[]),
        app.flows.add(parent.call(), children=[part.call(1)], on_child_failure="retry"),  # type: ignore[arg-type]
        app.flows.add(parent.call(), children=[part.options(job_id="x").call(1)]),
        app.flows.add(parent.call(), children=["not a call"]),  # type: ignore[list-item]
        app.flows.add(parent.options(delay=5).call(), children=[part.call(1)]),
        app.flows.add(parent.call(), children=[part.options(throttle=("k", 1)).call(1)]),
        app.flows.chain(part.call(1)),
        app.flows.chain(part.call(1), part.call(2)),  # type: ignore[call-overload]
        app.flows.group([part.call(1)], then=parent.call()),  # type: ignore[arg-type]
    ]
    for attempt in bad:
        with pytest.raises(BadInputError):
            await attempt
    with pytest.raises(InvalidArgumentsError):
        await app.flows.chain(part.call(1), step.step(2, 3))  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentsError):
        await app.flows.add(parent.call(), children=[part.call(1), part.call()])  # type: ignore[call-arg]
    assert all(sum(by_state.values()) == 0 for by_state in (await app.jobs.counts()).values())
    with pytest.raises(NotFoundError):
        await app.flows.children((await part.enqueue(1)).id)


async def test_child_that_stalls_for_good_fails_its_parent(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="parts", max_stalled=0)
    async def part() -> None:
        return None

    @app.task
    async def parent() -> None:
        return None

    flow = await app.flows.add(parent.call(), children=[part.call()])
    _, claimed = await app.store.exchange([], ["parts"], 1, "gone", 1)  # a worker that died
    assert [c.id for c in claimed] == flow.child_ids
    later = now_ms() + 60_000
    assert [s.failed for s in await app.store.sweep_stalled(later, 60_000)] == [True]
    await app.flows.store.repair(later + 60_000)  # Redis: the sweep repairs the delivery
    with pytest.raises(JobFailedError) as failed:
        await flow.wait(timeout=5)
    assert "failed: StalledError" in str(failed.value)


async def test_a_pending_child_cannot_be_removed_or_cleaned(make_app: AppFactory) -> None:
    """Deleting a child its parent waits for would strand the parent: cancel it first."""
    app = make_app()

    @app.task(queue="parts")
    async def part(n: int) -> int:
        return n

    @app.task
    async def parent() -> list[int]:
        return current_job().children_results()

    flow = await app.flows.add(parent.call(), children=[part.call(1), part.call(2)])
    with pytest.raises(ConflictError, match="pending flow child; cancel it first"):
        await app.jobs.remove(flow.child_ids[0])
    with pytest.raises(ConflictError, match="pending flow child"):
        await app.jobs.clean("parts", "waiting", older_than=-60)
    for child_id in flow.child_ids:
        assert (await app.jobs.get(child_id)).status is JobState.WAITING
    await app.jobs.cancel(flow.child_ids[0])
    await app.flows.store.repair(now_ms() + 60_000)  # Redis: the sweep delivers a cancel
    await app.jobs.remove(flow.child_ids[0])
    await app.work(burst=True)
    assert (await flow.job.refresh()).status is JobState.FAILED


async def test_retrying_a_parent_failed_by_a_child_waits_for_its_other_children(
    make_app: AppFactory,
) -> None:
    app = make_app()
    ran: list[list[JobState | None]] = []

    @app.task(queue="bad")
    async def bad() -> int:
        raise NonRetryableError("boom")

    @app.task(queue="slow")
    async def slow() -> int:
        return 2

    @app.task
    async def parent() -> str:
        ran.append([c.state for c in current_job().children])
        return "ran"

    flow = await app.flows.add(parent.call(), children=[bad.call(), slow.call()])
    await app.work(queues=["bad"], burst=True)
    await app.flows.store.repair(now_ms() + 60_000)
    assert (await flow.job.refresh()).status is JobState.FAILED
    await app.jobs.retry(flow.id)
    assert (await flow.job.refresh()).status is JobState.WAITING_CHILDREN
    assert (await app.work(queues=["default"], burst=True)).completed == 0
    await app.work(queues=["slow"], burst=True)
    await app.work(burst=True)
    assert await flow.wait(timeout=5) == "ran"
    assert ran == [[JobState.FAILED, JobState.COMPLETED]]


async def test_retrying_a_cancelled_parent_of_finished_children_runs_it(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.task(queue="parts")
    async def part() -> int:
        return 1

    @app.task
    async def parent() -> int:
        return sum(current_job().children_results())

    flow = await app.flows.add(parent.call(), children=[part.call(), part.call()])
    await flow.job.cancel()
    await app.jobs.retry(flow.id)
    assert (await flow.job.refresh()).status is JobState.WAITING_CHILDREN
    await app.work(burst=True)
    assert await flow.wait(timeout=5) == 2


async def test_adding_a_flow_again_after_its_root_was_removed_is_refused(
    make_app: AppFactory,
) -> None:
    """Its children finished and reported long ago: a new root would wait for them forever."""
    app = make_app()

    @app.task(queue="parts")
    async def part(n: int) -> int:
        return n

    @app.task
    async def report() -> int:
        return sum(current_job().children_results())

    def calls() -> list[Any]:
        return [part.call(n) for n in range(3)]

    first = await app.flows.add(report.options(job_id="daily").call(), children=calls())
    await app.work(queues=["parts"], burst=True)
    await app.flows.store.repair(now_ms() + 60_000)
    await app.work(burst=True)
    assert await first.wait(timeout=5) == 3
    await app.jobs.remove("daily")  # by hand, or by its retention
    with pytest.raises(ConflictError, match="exists already"):
        await app.flows.add(report.options(job_id="daily").call(), children=calls())
    with pytest.raises(NotFoundError):
        await app.jobs.get("daily")


async def test_a_lost_delivery_is_repaired_behind_1001_children_of_a_removed_parent(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results that have no parent left to go to do not hold up the repair of others."""
    app = make_app(concurrency=200, claim_batch=200)

    @app.task(queue="parts")
    async def part(n: int) -> int:
        return n

    @app.task
    async def parent() -> list[int]:
        return current_job().children_results()

    big = await app.flows.add(parent.call(), children=[part.call(n) for n in range(1001)])
    await app.jobs.remove(big.id)
    assert (await app.work(queues=["parts"], burst=True)).completed == 1001
    small = await app.flows.add(parent.call(), children=[part.call(7)])

    async def crashed(children: Any) -> int:
        return 0

    store = app.flows.store
    with monkeypatch.context() as patch:
        patch.setattr(store, "deliver", crashed)
        assert (await app.work(queues=["parts"], burst=True)).completed == 1
    for _ in range(3):  # three sweeps
        await store.repair(now_ms() + 60_000)
    assert (await small.job.refresh()).status is JobState.WAITING
    await app.work(burst=True)
    assert await small.wait(timeout=5) == [7]
