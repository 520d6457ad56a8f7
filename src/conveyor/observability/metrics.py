"""One Prometheus registry per app; every component reports into it.

Per-job work is kept small: the labelled children of each (queue, task) are
looked up once and cached, so a finished job costs a counter increment and
two histogram observations. Gauges of store state (jobs by queue and state,
age of the oldest waiting job) are refreshed from the store when scraped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from conveyor.stores.base import JobState

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter as CounterT
    from prometheus_client.metrics import Histogram as HistogramT

    from conveyor.stores.base import JobStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Fixed so that dashboards can aggregate across processes.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class _TaskSeries(NamedTuple):
    completed: CounterT
    failed: CounterT
    retried: CounterT
    cancelled: CounterT
    stalled: CounterT
    wait: HistogramT
    run: HistogramT


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("queue", "task")
        self.jobs = Gauge(
            "conveyor_jobs",
            "Jobs in the store by queue and state.",
            ("queue", "state"),
            registry=registry,
        )
        self.oldest_waiting = Gauge(
            "conveyor_queue_oldest_waiting_seconds",
            "Age of the longest-waiting ready job of each queue.",
            ("queue",),
            registry=registry,
        )
        self.workers = Gauge(
            "conveyor_workers", "Workers heartbeating into the store.", registry=registry
        )
        self.completed = Counter(
            "conveyor_jobs_completed", "Jobs completed.", labels, registry=registry
        )
        self.failed = Counter(
            "conveyor_jobs_failed", "Jobs failed for good.", labels, registry=registry
        )
        self.retried = Counter(
            "conveyor_jobs_retried",
            "Attempts that failed and will be retried.",
            labels,
            registry=registry,
        )
        self.cancelled = Counter(
            "conveyor_jobs_cancelled", "Running jobs cancelled.", labels, registry=registry
        )
        self.stalled = Counter(
            "conveyor_jobs_stalled", "Jobs whose lease expired.", labels, registry=registry
        )
        self.wait = Histogram(
            "conveyor_job_wait_seconds",
            "From due to claimed.",
            labels,
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.run = Histogram(
            "conveyor_job_run_seconds",
            "Time an attempt ran.",
            labels,
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self._series: dict[tuple[str, str], _TaskSeries] = {}

    def series(self, queue: str, task: str) -> _TaskSeries:
        key = (queue, task)
        found = self._series.get(key)
        if found is None:
            found = _TaskSeries(
                self.completed.labels(queue, task),
                self.failed.labels(queue, task),
                self.retried.labels(queue, task),
                self.cancelled.labels(queue, task),
                self.stalled.labels(queue, task),
                self.wait.labels(queue, task),
                self.run.labels(queue, task),
            )
            self._series[key] = found
        return found

    def history_totals(self) -> dict[tuple[str, tuple[str, ...]], int]:
        """This process's totals since start, per queue, for the metrics history
        (``observability/history.py``): outcomes, and wait and run times per bucket
        (each bucket counts the observations above the edge below it, up to its ``le``)."""
        totals: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
        counters = (
            ("jobs_completed", self.completed),
            ("jobs_failed", self.failed),
            ("jobs_retried", self.retried),
        )
        for kind, counter in counters:
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        totals[kind, (sample.labels["queue"],)] += int(sample.value)
        for kind, histogram in (("job_wait_bucket", self.wait), ("job_run_bucket", self.run)):
            cumulative: dict[tuple[str, str], int] = defaultdict(int)
            for family in histogram.collect():
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        key = (sample.labels["queue"], sample.labels["le"])
                        cumulative[key] += int(sample.value)
            below: dict[str, int] = defaultdict(int)
            for (queue, le), count in sorted(cumulative.items(), key=_by_edge):
                totals[kind, (queue, le)] += count - below[queue]
                below[queue] = count
        return totals

    async def refresh(self, store: JobStore) -> dict[str, dict[JobState, int]]:
        """Refresh the store gauges; returns the job counts read (other gauges use them)."""
        counts = await store.counts()
        for queue, by_state in counts.items():
            for state in JobState:
                self.jobs.labels(queue, state.value).set(by_state.get(state, 0))
        oldest = await store.oldest_waiting()
        now = time.time()
        for queue in counts:
            at = oldest.get(queue)
            self.oldest_waiting.labels(queue).set(0.0 if at is None else max(0.0, now - at / 1000))
        self.workers.set(len(await store.workers()))
        return counts


def _by_edge(item: tuple[tuple[str, str], int]) -> tuple[str, float]:
    (queue, le), _ = item
    return queue, float(le)


ScrapeHook = Callable[[dict[str, dict[JobState, int]]], None]
"""Called at each scrape with the job counts just read (per queue and state)."""


class Metrics:
    """``app.metrics``: the one registry every component reports into, and the job metrics.

    Other components register their own families on :attr:`registry` (the
    event bus, the cache, the service layer) and, when a gauge derives from
    the job counts, a :data:`ScrapeHook` in :attr:`scrape_hooks`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = JobMetrics(self.registry)
        self.scrape_hooks: list[ScrapeHook] = []

    async def exposition(self, store: JobStore | None = None) -> bytes:
        """Prometheus text format, with store gauges refreshed first."""
        if store is not None:
            counts = await self.jobs.refresh(store)
            for hook in self.scrape_hooks:
                hook(counts)
        return generate_latest(self.registry)
