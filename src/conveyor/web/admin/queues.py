"""``/queues``: metrics, pause and resume, clean (with ``dry_run``), limits, bulk retry, and
the products' job endpoints under a queue (add, list, get, delete)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from conveyor.errors import NotFoundError
from conveyor.jobs.arguments import validate_call_arguments
from conveyor.jobs.options import Call, EnqueueOptions
from conveyor.jobs.queues import require_known_queue
from conveyor.stores.base import JobState
from conveyor.web.admin import reads, schemas, views
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.state import AdminState, guards

QUEUE = Path(alias="queueName", min_length=1, max_length=200)
JOB = Path(alias="jobId", min_length=1, max_length=200)
CURSOR = Query(None, max_length=1000, description="The `next` of the previous page.")
LIMIT = Query(50, ge=1, le=200)
WINDOW = Query(60, ge=1, le=1440, description="Minutes of history.")


def queue_routes(admin: AdminState) -> APIRouter:
    viewer, operator = guards(admin)
    app = admin.app
    router = APIRouter(prefix="/queues", tags=["queues"])

    @router.get("", summary="Every queue: counts by state, paused, oldest waiting, throughput")
    async def list_queues(_: Principal = Depends(viewer)) -> list[schemas.QueueOut]:
        return await reads.queue_list(app)

    @router.get("/metrics", summary="Metrics of every queue, minute by minute")
    async def all_metrics(
        minutes: int = WINDOW, _: Principal = Depends(viewer)
    ) -> schemas.QueuesMetrics:
        return await reads.queues_metrics(app, minutes)

    @router.get("/{queueName}/metrics", summary="Metrics of one queue, minute by minute")
    async def queue_metrics(
        queue: str = QUEUE, minutes: int = WINDOW, _: Principal = Depends(viewer)
    ) -> schemas.QueueMetrics:
        return (await reads.queues_metrics(app, minutes, only=queue)).queues[0]

    @router.post("/{queueName}/pause", summary="Pause a queue: workers claim none of its jobs")
    async def pause(
        request: Request, queue: str = QUEUE, who: Principal = Depends(operator)
    ) -> schemas.QueueOut:
        await require_known_queue(app, queue)
        await app.jobs.pause(queue)
        await admin.audit(request, who, "queue.pause", f"queue:{queue}")
        return await reads.queue_one(app, queue)

    @router.post("/{queueName}/resume", summary="Resume a paused queue")
    async def resume(
        request: Request, queue: str = QUEUE, who: Principal = Depends(operator)
    ) -> schemas.QueueOut:
        await require_known_queue(app, queue)
        await app.jobs.resume(queue)
        await admin.audit(request, who, "queue.resume", f"queue:{queue}")
        return await reads.queue_one(app, queue)

    @router.post("/{queueName}/clean", summary="Delete jobs by state and age (dry_run: count)")
    async def clean(
        body: schemas.CleanIn,
        request: Request,
        queue: str = QUEUE,
        who: Principal = Depends(operator),
    ) -> schemas.CleanOut:
        await require_known_queue(app, queue)
        count = await app.jobs.clean(
            queue, body.state, body.older_than_seconds, body.limit, dry_run=body.dry_run
        )
        if not body.dry_run:
            await admin.audit(
                request, who, "queue.clean", f"queue:{queue} state:{body.state}", {"removed": count}
            )
        return schemas.CleanOut(queue=queue, state=body.state, dry_run=body.dry_run, count=count)

    @router.post("/{queueName}/retry-failed", summary="Retry failed jobs (bulk, bounded)")
    async def retry_failed(
        body: schemas.RetryFailedIn,
        request: Request,
        queue: str = QUEUE,
        who: Principal = Depends(operator),
    ) -> schemas.CountOut:
        count = await app.jobs.retry_failed(queue, body.limit)
        await admin.audit(request, who, "queue.retry_failed", f"queue:{queue}", {"retried": count})
        return schemas.CountOut(count=count)

    @router.get("/{queueName}/limits", summary="A queue's concurrency and rate limits")
    async def limits(queue: str = QUEUE, _: Principal = Depends(viewer)) -> schemas.QueueLimitsOut:
        return await _limits(queue)

    @router.put("/{queueName}/limits", summary="Replace a queue's concurrency and rate limits")
    async def set_limits(
        body: schemas.QueueLimitsIn,
        request: Request,
        queue: str = QUEUE,
        who: Principal = Depends(operator),
    ) -> schemas.QueueLimitsOut:
        await require_known_queue(app, queue)
        rate = None
        if body.rate_limit is not None:
            rate = (body.rate_limit, body.rate_period_seconds or 1.0)
        await app.jobs.set_queue_limits(queue, concurrency=body.concurrency, rate=rate)
        await admin.audit(request, who, "queue.limits", f"queue:{queue}")
        return await _limits(queue)

    async def _limits(queue: str) -> schemas.QueueLimitsOut:
        found = await app.jobs.queue_limits(queue)
        return schemas.QueueLimitsOut(
            queue=queue,
            concurrency=found.concurrency,
            rate_limit=found.rate,
            rate_period_seconds=None if found.rate is None else found.period_ms / 1000,
            task_concurrency=dict(found.tasks),
            backoff_until=views.when(found.backoff_until) if found.backoff_until else None,
        )

    @router.post("/{queueName}/jobs", status_code=201, summary="Add a job of a registered task")
    async def add_job(
        body: schemas.JobIn,
        request: Request,
        queue: str = QUEUE,
        who: Principal = Depends(operator),
    ) -> schemas.JobDetail:
        task = app.tasks.get(body.task)
        if task is None:
            raise NotFoundError(f"no task named {body.task!r} is registered")
        validate_call_arguments(task, body.args, body.kwargs)
        options = EnqueueOptions(
            job_id=body.job_id,
            delay=body.delay_seconds,
            priority=body.priority,
            queue=queue,
        )
        (job,) = await app.jobs.enqueue([Call(task, tuple(body.args), body.kwargs, options)])
        await admin.audit(request, who, "job.add", f"job:{job.id} task:{task.name}")
        return await reads.job_detail(app, job.id)

    @router.get("/{queueName}/jobs", summary="A queue's jobs in one state, newest first")
    async def list_jobs(
        queue: str = QUEUE,
        state: JobState = Query(JobState.WAITING),
        cursor: str | None = CURSOR,
        limit: int = LIMIT,
        _: Principal = Depends(viewer),
    ) -> schemas.JobPageOut:
        page = await app.jobs.list_page(state, queue, cursor=cursor, limit=limit)
        return schemas.JobPageOut(jobs=[views.job_summary(j) for j in page.jobs], next=page.next)

    @router.get("/{queueName}/jobs/{jobId}", summary="One job of a queue, in full")
    async def get_job(
        queue: str = QUEUE, job_id: str = JOB, _: Principal = Depends(viewer)
    ) -> schemas.JobDetail:
        return await reads.job_detail(app, job_id, queue)

    @router.delete("/{queueName}/jobs/{jobId}", status_code=204, summary="Remove a job")
    async def remove_job(
        request: Request, queue: str = QUEUE, job_id: str = JOB, who: Principal = Depends(operator)
    ) -> Response:
        job = await app.jobs.get(job_id)
        if job.queue != queue:
            raise NotFoundError(f"no job with id {job_id!r} in queue {queue!r}")
        await app.jobs.remove(job_id)
        await admin.audit(request, who, "job.remove", f"job:{job_id}", {"removed": 1})
        return Response(status_code=204)

    return router
