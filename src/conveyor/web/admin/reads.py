"""The reads the API and the dashboard share: each a few bounded calls on app clients.

The dashboard renders what these return, and the API returns it as JSON, so
a page never shows what the API cannot tell.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from conveyor.app import Conveyor
from conveyor.errors import NotFoundError
from conveyor.events.envelope import GROUP_QUEUE_PREFIX
from conveyor.observability.history import (
    JOB_RUN_BUCKET,
    JOB_WAIT_BUCKET,
    JOBS_COMPLETED,
    JOBS_FAILED,
    RATELIMIT_REJECTED,
    quantile,
)
from conveyor.observability.metrics import RUN_BUCKETS, WAIT_BUCKETS
from conveyor.stores.base import JobState
from conveyor.web.admin import schemas, views

THROUGHPUT_MINUTES = 5
BACKLOG_STATES = (JobState.WAITING, JobState.SCHEDULED, JobState.ACTIVE)


async def queue_list(app: Conveyor) -> list[schemas.QueueOut]:
    """Every queue: counts by state, paused, oldest waiting, throughput (last 5 minutes)."""
    metrics = await queues_metrics(app, THROUGHPUT_MINUTES)
    return [queue_summary(q) for q in metrics.queues]


async def queue_one(app: Conveyor, queue: str) -> schemas.QueueOut:
    (found,) = (await queues_metrics(app, THROUGHPUT_MINUTES, only=queue)).queues
    return queue_summary(found)


def queue_summary(metrics: schemas.QueueMetrics) -> schemas.QueueOut:
    return schemas.QueueOut(**metrics.model_dump(exclude=SERIES_FIELDS))


SERIES_FIELDS = {
    "window_minutes",
    "completed",
    "failed",
    "wait_p50",
    "wait_p95",
    "run_p50",
    "run_p95",
}


Counts = dict[str, dict[JobState, int]]


async def queues_metrics(
    app: Conveyor, minutes: int = 60, only: str | None = None, counts: Counts | None = None
) -> schemas.QueuesMetrics:
    """Per queue: counts, age of the oldest waiting job, per-minute outcomes, percentiles
    (``counts``: the job counts when the caller read them already)."""
    counts = await app.jobs.counts() if counts is None else counts
    paused = {q.name: q.paused for q in await app.jobs.queues()}
    oldest = await app.jobs.oldest_waiting()
    names = sorted(set(counts) | set(paused) | set(app.queue_names()))
    if only is not None:
        if only not in names:
            raise NotFoundError(f"no queue named {only!r}")
        names = [only]
    done = await app.history.series(JOBS_COMPLETED, minutes)
    failed = await app.history.series(JOBS_FAILED, minutes)
    buckets = _buckets(await app.history.read([JOB_WAIT_BUCKET, JOB_RUN_BUCKET], minutes))
    now = app.clock.now_ms()
    queues = []
    for name in names:
        done_series = done.values.get((name,), [0] * minutes)
        failed_series = failed.values.get((name,), [0] * minutes)
        recent = min(minutes, THROUGHPUT_MINUTES)
        at = oldest.get(name)
        queues.append(
            schemas.QueueMetrics(
                name=name,
                paused=paused.get(name, False),
                counts=views.counts_out(counts.get(name, {})),
                oldest_waiting_seconds=None if at is None else max(0.0, (now - at) / 1000),
                completed_per_minute=sum(done_series[-recent:]) / recent,
                failed_per_minute=sum(failed_series[-recent:]) / recent,
                window_minutes=minutes,
                completed=done_series,
                failed=failed_series,
                wait_p50=quantile(buckets[JOB_WAIT_BUCKET, name], 0.5, WAIT_BUCKETS),
                wait_p95=quantile(buckets[JOB_WAIT_BUCKET, name], 0.95, WAIT_BUCKETS),
                run_p50=quantile(buckets[JOB_RUN_BUCKET, name], 0.5, RUN_BUCKETS),
                run_p95=quantile(buckets[JOB_RUN_BUCKET, name], 0.95, RUN_BUCKETS),
            )
        )
    return schemas.QueuesMetrics(window_minutes=minutes, start=done.start, queues=queues)


def _buckets(rows: list[Any]) -> defaultdict[tuple[str, str], dict[float, int]]:
    found: defaultdict[tuple[str, str], dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        queue, edge = row.labels[0], float(row.labels[1])
        found[row.kind, queue][edge] += row.value
        found[row.kind, "*"][edge] += row.value
    return found


async def overall_percentiles(app: Conveyor, minutes: int) -> dict[str, float | None]:
    """Wait and run p50/p95 over every queue."""
    buckets = _buckets(await app.history.read([JOB_WAIT_BUCKET, JOB_RUN_BUCKET], minutes))
    wait, run = buckets[JOB_WAIT_BUCKET, "*"], buckets[JOB_RUN_BUCKET, "*"]
    return {
        "wait_p50": quantile(wait, 0.5, WAIT_BUCKETS),
        "wait_p95": quantile(wait, 0.95, WAIT_BUCKETS),
        "run_p50": quantile(run, 0.5, RUN_BUCKETS),
        "run_p95": quantile(run, 0.95, RUN_BUCKETS),
    }


async def job_detail(app: Conveyor, job_id: str, queue: str | None = None) -> schemas.JobDetail:
    job = await app.jobs.get(job_id)
    if queue is not None and job.queue != queue:
        raise NotFoundError(f"no job with id {job_id!r} in queue {queue!r}")
    logs = await job.logs()
    timeline = await app.jobs.events_of(job_id)
    flow = None
    parent = views.flow_parent(job)
    if parent is not None or views.is_flow_parent(job):
        children = await app.flows.children(job) if views.is_flow_parent(job) else []
        flow = schemas.FlowOut(
            parent=parent,
            children=[
                schemas.FlowChildOut(
                    id=c.job_id, queue=c.queue, state=None if c.state is None else c.state.value
                )
                for c in children
            ],
        )
    return views.job_detail(app, job, logs, timeline, flow)


async def event_groups(app: Conveyor, counts: Counts | None = None) -> list[schemas.GroupOut]:
    groups = await app.events.groups()
    counts = await app.jobs.counts() if counts is None else counts
    found = []
    for group in sorted(set(groups) | {q[len(GROUP_QUEUE_PREFIX) :] for q in counts if _grp(q)}):
        by_state = counts.get(GROUP_QUEUE_PREFIX + group, {})
        found.append(
            schemas.GroupOut(
                group=group,
                types=groups.get(group, []),
                backlog=sum(by_state.get(s, 0) for s in BACKLOG_STATES),
                dead_letters=by_state.get(JobState.FAILED, 0),
            )
        )
    return found


def _grp(queue: str) -> bool:
    return queue.startswith(GROUP_QUEUE_PREFIX)


def cache_stats(app: Conveyor) -> schemas.CacheOut:
    cache = app.cache
    namespaces = []
    for name, s in sorted(cache.stats_by_namespace().items()):
        namespaces.append(
            schemas.CacheNamespaceOut(
                namespace=name,
                hits=s.hits,
                local_hits=s.local_hits,
                shared_hits=s.shared_hits,
                misses=s.misses,
                stale=s.stale,
                sets=s.sets,
                deletes=s.deletes,
                computations=s.computations,
                hit_ratio=s.hit_rate,
            )
        )
    local = cache.local
    return schemas.CacheOut(
        namespaces=namespaces,
        local_entries=len(local),
        local_bytes=local.bytes,
        local_evictions=local.evictions,
        shared_errors=cache.shared_stats.errors,
        circuit_open=bool(cache.breaker.is_open),
    )


async def rate_limits(app: Conveyor, minutes: int = 60) -> schemas.RateLimitsOut:
    limits = app.rate_limits
    rejected: dict[str, int] = defaultdict(int)
    for row in await app.history.read([RATELIMIT_REJECTED], minutes):
        rejected[row.labels[0] if row.labels else "other"] += row.value
    return schemas.RateLimitsOut(
        tiers=list(limits.tiers),
        policies=[
            schemas.RatePolicyOut(name=str(d["name"]), description=d) for d in limits.describe()
        ],
        window_minutes=minutes,
        rejected_by_tier=dict(rejected),
    )


async def health(app: Conveyor, max_age: float) -> schemas.HealthOut:
    report = await app.health.readiness(max_age=max_age)
    return schemas.HealthOut(
        status=report.status.value,
        checks=[
            schemas.CheckOut(
                name=name, status=c.status.value, detail=c.detail, duration_ms=c.duration_ms
            )
            for name, c in sorted(report.checks.items())
        ],
    )


async def workers(app: Conveyor) -> list[schemas.WorkerOut]:
    return [views.worker_out(w) for w in await app.jobs.workers()]
