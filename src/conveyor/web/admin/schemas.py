"""The management API's request and response bodies (pydantic models: the OpenAPI schema).

Payload values (arguments, results, progress) are any JSON, with secrets
masked (``views.py``). Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from conveyor.jobs.limits import MAX_PERIOD_SECONDS, MIN_PERIOD_SECONDS
from conveyor.stores.base import JobState

Json = Any
NAME = Field(min_length=1, max_length=200)


def _integral(value: Any) -> Any:
    """JSON's ``5.0`` is the integer 5 (JSON Schema says so); ``"5"`` and ``true`` are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral)
Count = Annotated[int, Field(ge=1, le=1_000_000), INTEGRAL]
Limit = Annotated[int, Field(ge=1, le=100_000), INTEGRAL]
Priority = Annotated[int, Field(ge=-1000, le=1000), INTEGRAL]


class Body(BaseModel):
    """A request body: strict (``0`` is no boolean, ``"5"`` no number) and closed."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Counts(BaseModel):
    """Jobs of a queue in each state."""

    scheduled: int = 0
    waiting_children: int = Field(0, alias="waiting-children")
    waiting: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    model_config = {"populate_by_name": True}


class QueueOut(BaseModel):
    name: str
    paused: bool
    counts: Counts
    oldest_waiting_seconds: float | None
    """Age of the longest-waiting ready job (None: nothing waits)."""
    completed_per_minute: float
    """Over the last ``window_minutes`` (from the metrics history)."""
    failed_per_minute: float


class QueueMetrics(QueueOut):
    window_minutes: int
    completed: list[int]
    """Completed per minute, oldest first, the last one the current minute."""
    failed: list[int]
    wait_p50: float | None
    wait_p95: float | None
    run_p50: float | None
    run_p95: float | None


class QueuesMetrics(BaseModel):
    window_minutes: int
    start: datetime
    """The first minute of the per-minute lists."""
    queues: list[QueueMetrics]


class QueueLimitsOut(BaseModel):
    queue: str
    concurrency: int | None
    rate_limit: int | None
    rate_period_seconds: float | None
    task_concurrency: dict[str, int]
    backoff_until: datetime | None


class QueueLimitsIn(Body):
    concurrency: Count | None = None
    rate_limit: Count | None = None
    rate_period_seconds: (
        Annotated[float, Field(ge=MIN_PERIOD_SECONDS, le=MAX_PERIOD_SECONDS)] | None
    ) = None


class CleanIn(Body):
    state: Literal["completed", "failed", "cancelled", "waiting", "scheduled", "waiting-children"]
    older_than_seconds: float = Field(0.0, ge=0, le=10 * 366 * 86_400)
    limit: Limit = 10_000
    dry_run: bool = False


class CleanOut(BaseModel):
    queue: str
    state: str
    dry_run: bool
    count: int
    """Deleted, or with ``dry_run`` how many would be."""


class RetryFailedIn(Body):
    limit: Limit = 1_000


class CountOut(BaseModel):
    count: int


class JobIn(Body):
    """A job of a registered task; ``args``/``kwargs`` are checked against its signature."""

    task: str = NAME
    args: list[Json] = Field(default_factory=list, max_length=1000)
    kwargs: dict[str, Json] = Field(default_factory=dict)
    job_id: str | None = Field(None, min_length=1, max_length=200)
    delay_seconds: float | None = Field(None, ge=0, le=10 * 366 * 86_400)
    priority: Priority | None = None


class JobErrorOut(BaseModel):
    type: str
    message: str
    traceback: str | None


class JobSummary(BaseModel):
    id: str
    queue: str
    task: str
    state: JobState
    priority: int
    attempts: int
    created_at: datetime
    scheduled_for: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Json
    percent: float | None
    """Progress as 0..100 when it reads as a share (a number, or done/total)."""
    error_type: str | None


class LogLineOut(BaseModel):
    at: datetime
    line: str


class JobEventOut(BaseModel):
    kind: str
    at: datetime
    data: Json


class FlowOut(BaseModel):
    parent: str | None
    """The job this one reports to (a flow child)."""
    children: list[FlowChildOut]


class FlowChildOut(BaseModel):
    id: str
    queue: str
    state: str | None
    """completed, failed or cancelled; None while it has not finished."""


class JobDetail(JobSummary):
    args: list[Json]
    kwargs: dict[str, Json]
    result: Json
    error: JobErrorOut | None
    max_attempts: int | None
    stalls: int
    fence: int
    worker: str | None
    request_id: str | None
    traceparent: str | None
    logs: list[LogLineOut]
    timeline: list[JobEventOut]
    flow: FlowOut | None


class JobPageOut(BaseModel):
    jobs: list[JobSummary]
    next: str | None
    """Cursor of the next page (None: this is the last). A search page may be short, or
    even empty, while ``next`` is set: keep paging."""


class CancelOut(BaseModel):
    id: str
    result: Literal["cancelled", "requested", "finished"]


class ScheduleOut(BaseModel):
    name: str
    task: str
    queue: str
    cron: str | None
    tz: str | None
    every_seconds: float | None
    missed: str
    next_fire: datetime
    last_fire: datetime | None
    paused: bool
    args: list[Json]
    kwargs: dict[str, Json]


class ScheduleIn(Body):
    task: str = NAME
    name: str | None = Field(None, min_length=1, max_length=150)
    cron: str | None = Field(None, min_length=1, max_length=200)
    every_seconds: float | None = Field(None, gt=0, le=366 * 86_400)
    tz: str | None = Field(None, min_length=1, max_length=64)
    missed: Literal["skip", "run_once"] = "skip"
    args: list[Json] = Field(default_factory=list, max_length=1000)
    kwargs: dict[str, Json] = Field(default_factory=dict)


class GroupOut(BaseModel):
    group: str
    types: list[str]
    backlog: int
    """Deliveries waiting, scheduled or running."""
    dead_letters: int


class DeadEventOut(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime
    data: Json


class DeadLetterOut(BaseModel):
    id: str
    group: str
    events: list[DeadEventOut]
    attempts: int
    error: JobErrorOut | None
    failed_at: datetime | None


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    next: str | None


class ReplayAllIn(Body):
    group: str | None = Field(None, min_length=1, max_length=200)


class CacheNamespaceOut(BaseModel):
    namespace: str
    hits: int
    local_hits: int
    shared_hits: int
    misses: int
    stale: int
    sets: int
    deletes: int
    computations: int
    hit_ratio: float


class CacheOut(BaseModel):
    namespaces: list[CacheNamespaceOut]
    local_entries: int
    local_bytes: int
    local_evictions: int
    shared_errors: int
    circuit_open: bool


class InvalidateIn(Body):
    """Delete cached values of ``namespace`` by one key, one tag, or a glob pattern
    (``user:*``)."""

    namespace: str = Field("default", min_length=1, max_length=200, pattern=r"^[^:]+$")
    by: Literal["key", "tag", "pattern"]
    value: str = Field(min_length=1, max_length=1000)


class RatePolicyOut(BaseModel):
    name: str
    description: dict[str, Json]


class RateLimitsOut(BaseModel):
    tiers: list[str]
    policies: list[RatePolicyOut]
    window_minutes: int
    rejected_by_tier: dict[str, int]
    """Requests refused in the window, per tier (from the metrics history)."""


class RateUsageOut(BaseModel):
    policy: str
    limit: int
    remaining: int
    window_seconds: float
    reset_seconds: float
    retry_after_seconds: float | None


class RateResetIn(Body):
    key: str = Field(min_length=1, max_length=500)


class WorkerOut(BaseModel):
    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    running: list[str]
    version: str
    started_at: datetime
    seen_at: datetime


class CheckOut(BaseModel):
    name: str
    status: str
    detail: str
    duration_ms: float


class HealthOut(BaseModel):
    status: str
    checks: list[CheckOut]


class AuditOut(BaseModel):
    id: str
    at: datetime
    actor: str
    action: str
    target: str
    counts: dict[str, int]
    request_id: str | None


class AuditPageOut(BaseModel):
    entries: list[AuditOut]
    next: str | None


class WhoAmI(BaseModel):
    actor: str
    role: str
    via: str


FlowOut.model_rebuild()
