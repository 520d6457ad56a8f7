"""The metrics history on every store: minute counts that add up across processes.

Processes flush what their counters grew by since their last flush into the
current minute; a minute's value is the sum of every process's flushes into
it. Percentiles come from fixed buckets summed over minutes and processes.
The sweep drops minutes older than ``history_days``.
"""

from __future__ import annotations

import pytest

from conveyor import BadInputError
from conveyor.config import load_settings
from conveyor.observability.history import HistoryClient
from conveyor.observability.metrics import Metrics
from conveyor.stores.backend import Backend
from conveyor.stores.history import HOUR, HistoryRow
from tests.conformance.conftest import START_MS, manual_clock
from tests.conftest import AppFactory

MINUTE = START_MS // 60_000


async def _opened() -> None:
    return None


def process(backend: Backend, **settings: float) -> tuple[Metrics, HistoryClient]:
    """One process's job metrics and the history client that flushes them."""
    metrics = Metrics()
    config = load_settings("memory://", {"log_level": "WARNING", **settings})
    history = HistoryClient(backend.history, backend.clock, config, _opened)
    history.add_source(metrics.jobs.history_totals)
    return metrics, history


async def test_rows_add_up_per_series_and_minute(backend: Backend) -> None:
    store = backend.history
    await store.add(
        [
            HistoryRow("jobs_completed", ("a",), MINUTE, 3),
            HistoryRow("jobs_completed", ("a",), MINUTE, 2),
            HistoryRow("jobs_completed", ("b",), MINUTE, 1),
            HistoryRow("jobs_completed", ("a",), MINUTE + 1, 7),
            HistoryRow("job_wait_bucket", ("a", "0.5"), MINUTE, 4),
        ]
    )
    await store.add([HistoryRow("jobs_completed", ("a",), MINUTE, 10)])
    rows = await store.read(["jobs_completed"], MINUTE, MINUTE + 1)
    assert rows == [
        HistoryRow("jobs_completed", ("a",), MINUTE, 15),
        HistoryRow("jobs_completed", ("b",), MINUTE, 1),
        HistoryRow("jobs_completed", ("a",), MINUTE + 1, 7),
    ]
    assert await store.read(["jobs_completed"], MINUTE + 1, MINUTE + 5) == [
        HistoryRow("jobs_completed", ("a",), MINUTE + 1, 7)
    ]
    both = await store.read(["job_wait_bucket", "jobs_failed"], MINUTE - 1, MINUTE)
    assert both == [HistoryRow("job_wait_bucket", ("a", "0.5"), MINUTE, 4)]


async def test_totals_sum_each_series_over_a_window_of_minutes(backend: Backend) -> None:
    store = backend.history
    # Three hours of one count a minute, the window cutting into the first and last.
    await store.add(
        [HistoryRow("jobs_failed", (q,), MINUTE + m, 1) for q in ("a", "b") for m in range(180)]
        + [HistoryRow("jobs_completed", ("a",), MINUTE + m, 2) for m in range(180)]
    )
    totals = await store.totals(["jobs_failed", "jobs_completed"], MINUTE + 30, MINUTE + 149)
    assert totals == {
        ("jobs_failed", ("a",)): 120,
        ("jobs_failed", ("b",)): 120,
        ("jobs_completed", ("a",)): 240,
    }
    assert await store.totals(["jobs_retried"], MINUTE, MINUTE + 180) == {}


async def test_an_hourly_read_sums_each_hour_that_starts_in_the_window(backend: Backend) -> None:
    store = backend.history
    await store.add([HistoryRow("jobs_completed", ("a",), MINUTE + m, m) for m in range(180)])
    await store.add([HistoryRow("jobs_completed", ("a",), MINUTE + 61, 1000)])
    hours = await store.read(["jobs_completed"], MINUTE + 1, MINUTE + 179, step=HOUR)
    assert hours == [
        HistoryRow("jobs_completed", ("a",), MINUTE + 60, sum(range(60, 120)) + 1000),
        HistoryRow("jobs_completed", ("a",), MINUTE + 120, sum(range(120, 180))),
    ]


async def test_trim_keeps_an_hours_sum_until_its_last_minute_goes(backend: Backend) -> None:
    store = backend.history
    await store.add([HistoryRow("jobs_failed", ("a",), MINUTE + m, 1) for m in range(180)])
    assert await store.trim(MINUTE + 90) == 90
    minutes = await store.read(["jobs_failed"], MINUTE, MINUTE + 179)
    assert [r.minute for r in minutes] == [MINUTE + m for m in range(90, 180)]
    hours = await store.read(["jobs_failed"], MINUTE, MINUTE + 179, step=HOUR)
    assert [(r.minute, r.value) for r in hours] == [(MINUTE + 60, 60), (MINUTE + 120, 60)]
    await store.trim(MINUTE + 120)
    hours = await store.read(["jobs_failed"], MINUTE, MINUTE + 179, step=HOUR)
    assert [r.minute for r in hours] == [MINUTE + 120]


async def test_trim_drops_every_minute_before_the_cut(backend: Backend) -> None:
    store = backend.history
    await store.add(
        [HistoryRow(kind, ("q",), MINUTE + m, 1) for kind in ("x", "y") for m in range(-3, 3)]
    )
    assert await store.trim(MINUTE) == 6
    rows = await store.read(["x", "y"], MINUTE - 10, MINUTE + 10)
    assert sorted({r.minute for r in rows}) == [MINUTE, MINUTE + 1, MINUTE + 2]
    assert await store.trim(MINUTE) == 0


async def test_counts_of_two_processes_add_up_in_the_minute_they_were_flushed(
    backend: Backend,
) -> None:
    clock = manual_clock(backend)
    one, one_history = process(backend)
    two, two_history = process(backend)
    one.jobs.series("emails", "send").completed.inc(3)
    two.jobs.series("emails", "send").completed.inc(2)
    two.jobs.series("emails", "bounce").failed.inc()
    two.jobs.series("sms", "send").completed.inc(4)
    assert await one_history.flush() == 1
    assert await two_history.flush() == 3
    clock.advance(60)
    one.jobs.series("emails", "send").completed.inc(1)
    await one_history.flush()
    assert await one_history.flush() == 0  # nothing new: nothing written
    done = await one_history.series("jobs_completed", minutes=3)
    assert done.values == {("emails",): [0, 5, 1], ("sms",): [0, 4, 0]}
    failed = await two_history.series("jobs_failed", minutes=3)
    assert failed.values == {("emails",): [0, 1, 0]}
    assert done.start.timestamp() == (MINUTE - 1) * 60
    by_hour = await one_history.series("jobs_completed", minutes=120, step=HOUR)
    assert (by_hour.step, by_hour.points) == (HOUR, 2)
    assert by_hour.values == {("emails",): [0, 6], ("sms",): [0, 4]}


async def test_percentiles_come_from_the_buckets_summed_over_processes(backend: Backend) -> None:
    one, one_history = process(backend)
    two, two_history = process(backend)
    for seconds in (0.002, 0.003, 0.004, 0.2):  # 3 in (0.001, 0.005], 1 in (0.1, 0.5]
        one.jobs.series("emails", "send").wait.observe(seconds)
    for _ in range(6):
        two.jobs.series("emails", "send").wait.observe(0.02)  # (0.01, 0.05]
    two.jobs.series("sms", "send").wait.observe(100)  # (60, 300], another queue
    await one_history.flush()
    await two_history.flush()
    emails = await one_history.percentiles("wait", queue="emails", quantiles=(0.2, 0.5, 0.95))
    # 10 jobs: the 2nd is in (0.001, 0.005] at 2/3, the 5th and the 9.5th in (0.01, 0.05].
    assert emails[0.2] == pytest.approx(0.001 + 0.004 * 2 / 3)
    assert emails[0.5] == pytest.approx(0.01 + 0.04 * 2 / 6)
    assert emails[0.95] == pytest.approx(0.1 + 0.4 * 0.5)
    everywhere = await one_history.percentiles("wait", quantiles=(1.0,))
    assert everywhere[1.0] == pytest.approx(300)
    assert (await one_history.percentiles("run"))[0.5] is None


async def test_the_sweep_keeps_history_days_of_minutes(backend: Backend) -> None:
    clock = manual_clock(backend)
    metrics, history = process(backend, history_days=1)
    metrics.jobs.series("q", "t").completed.inc()
    await history.flush()
    clock.advance(23 * 3600)
    await history.trim()
    assert len(await history.read(["jobs_completed"], minutes=1440)) == 1
    clock.advance(3600 + 60)
    assert await history.trim() == 1
    assert await history.read(["jobs_completed"], minutes=1440) == []
    with pytest.raises(BadInputError):
        await history.read(["jobs_completed"], minutes=1441)


async def test_a_worker_flushes_what_it_ran_into_the_history(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(queue="emails")
    async def send(n: int) -> None:
        if n == 0:
            raise ValueError("bounced")

    await app.enqueue_many([send.call(n) for n in range(5)])
    await app.work(burst=True)  # its last flush runs as it stops
    done = await app.history.series("jobs_completed", minutes=2)
    failed = await app.history.series("jobs_failed", minutes=2)
    assert sum(done.values[("emails",)]) == 4
    assert sum(failed.values[("emails",)]) == 1
    waits = await app.history.read(["job_wait_bucket"], minutes=2)
    runs = await app.history.read(["job_run_bucket"], minutes=2)
    assert sum(r.value for r in waits) == sum(r.value for r in runs) == 5
    assert (await app.history.percentiles("run", queue="emails"))[0.95] is not None
