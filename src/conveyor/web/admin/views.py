"""What the API and the dashboard show of conveyor's objects, with secrets masked.

One masking rule for logs, the API and the pages (``observability/logging``'s
``mask_data``): a field whose name names a secret (``password``, ``token``,
``api_key``...) is ``***`` at any depth, positional arguments are named by
their parameter, and secrets inside text (``Bearer ...``, ``password=...``,
URL passwords) are masked too. Results, progress, logs and errors pass through
the same rule.
"""

from __future__ import annotations

import inspect
import math
from datetime import UTC, datetime
from typing import Any

import msgspec

from conveyor.app import Conveyor
from conveyor.events.deadletters import DeadLetter
from conveyor.jobs.job import Job, JobError
from conveyor.jobs.options import options_decoder
from conveyor.jobs.schedule import Schedule
from conveyor.observability.logging import mask_data, mask_text
from conveyor.stores.base import JobEvent, JobState, LogLine, WorkerInfo
from conveyor.web.admin import schemas


def when(ms: int | None) -> datetime | None:
    return None if ms is None else at(ms)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def masked_call(
    app: Conveyor, task: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Arguments with secrets masked, positional ones judged by their parameter's name."""
    names: list[str] = []
    found = app.tasks.get(task)
    if found is not None:
        names = [
            p.name
            for p in found.signature.parameters.values()
            if p.kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
    shown = [mask_data(v, names[i] if i < len(names) else "") for i, v in enumerate(args)]
    return shown, {k: mask_data(v, k) for k, v in kwargs.items()}


def percent(progress: Any) -> float | None:
    """Progress as 0..100 when it reads as a share: a number (0-100 by convention), or an
    object with ``percent``, or ``done``/``current`` and ``total``."""
    value: Any = None
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        value = progress
    elif isinstance(progress, dict):
        if isinstance(progress.get("percent"), int | float):
            value = progress["percent"]
        else:
            done = progress.get("done", progress.get("current"))
            total = progress.get("total")
            if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
                value = 100 * done / total
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(min(100.0, max(0.0, value)))


def error_out(error: JobError | None) -> schemas.JobErrorOut | None:
    if error is None:
        return None
    return schemas.JobErrorOut(
        type=error.type,
        message=mask_text(error.message),
        traceback=None if error.traceback is None else mask_text(error.traceback),
    )


def job_summary(job: Job[Any]) -> schemas.JobSummary:
    record = job.record
    progress = mask_data(_loads(record.progress), "progress")
    error_type = None
    if record.error is not None:
        error = job.error
        error_type = error.type if error else None
    return schemas.JobSummary(
        id=job.id,
        queue=job.queue,
        task=job.task,
        state=job.status,
        priority=job.priority,
        attempts=job.attempts,
        created_at=job.created_at,
        scheduled_for=job.scheduled_for,
        started_at=job.started_at,
        finished_at=job.finished_at,
        progress=progress,
        percent=percent(progress),
        error_type=error_type,
    )


def job_detail(
    app: Conveyor,
    job: Job[Any],
    logs: list[LogLine],
    timeline: list[JobEvent],
    flow: schemas.FlowOut | None,
) -> schemas.JobDetail:
    args, kwargs = job.args
    shown_args, shown_kwargs = masked_call(app, job.task, list(args), dict(kwargs))
    options = options_decoder.decode(job.record.options)
    return schemas.JobDetail(
        **job_summary(job).model_dump(),
        args=shown_args,
        kwargs=shown_kwargs,
        result=mask_data(_loads(job.record.result), "result"),
        error=error_out(job.error),
        max_attempts=None if options.retries is None else options.retries + 1,
        stalls=job.stalls,
        fence=job.fence,
        worker=job.worker,
        request_id=job.request_id,
        traceparent=job.traceparent,
        logs=[schemas.LogLineOut(at=at(line.at), line=mask_text(line.line)) for line in logs],
        timeline=[event_out(event) for event in timeline],
        flow=flow,
    )


def event_out(event: JobEvent) -> schemas.JobEventOut:
    data = mask_data(_loads(event.data), "data")
    if event.kind.value in ("retrying", "failed") and isinstance(data, dict):
        data.pop("traceback", None)  # the job's own error carries the last one
    return schemas.JobEventOut(kind=event.kind.value, at=at(event.at), data=data)


def flow_parent(job: Job[Any]) -> str | None:
    """The id of the flow parent ``job`` reports to (children's ids extend the parent's)."""
    options = options_decoder.decode(job.record.options)
    if options.flow is None or not options.flow.child or "." not in job.id:
        return None
    return job.id.rsplit(".", 1)[0]


def is_flow_parent(job: Job[Any]) -> bool:
    options = options_decoder.decode(job.record.options)
    return options.flow is not None and options.flow.parent is not None


def counts_out(by_state: dict[JobState, int]) -> schemas.Counts:
    return schemas.Counts.model_validate({s.value: by_state.get(s, 0) for s in JobState})


def schedule_out(schedule: Schedule) -> schemas.ScheduleOut:
    args, kwargs = list(schedule.args), dict(schedule.kwargs)
    return schemas.ScheduleOut(
        name=schedule.name,
        task=schedule.task,
        queue=schedule.queue,
        cron=schedule.cron,
        tz=schedule.tz,
        every_seconds=schedule.every,
        missed=schedule.missed,
        next_fire=schedule.next_fire,
        last_fire=schedule.last_fire,
        paused=schedule.paused,
        args=[mask_data(v) for v in args],
        kwargs={k: mask_data(v, k) for k, v in kwargs.items()},
    )


def dead_letter_out(letter: DeadLetter) -> schemas.DeadLetterOut:
    return schemas.DeadLetterOut(
        id=letter.id,
        group=letter.group,
        events=[
            schemas.DeadEventOut(
                event_id=event.meta.event_id,
                type=event.meta.type,
                occurred_at=event.meta.occurred_at,
                data=mask_data(event.data, "data"),
            )
            for event in letter.events
        ],
        attempts=letter.attempts,
        error=error_out(letter.error),
        failed_at=letter.failed_at,
    )


def worker_out(worker: WorkerInfo) -> schemas.WorkerOut:
    return schemas.WorkerOut(
        id=worker.id,
        hostname=worker.hostname,
        pid=worker.pid,
        queues=list(worker.queues),
        concurrency=worker.concurrency,
        running=list(worker.running),
        version=worker.version,
        started_at=at(worker.started_at),
        seen_at=at(worker.seen_at),
    )


def _loads(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
