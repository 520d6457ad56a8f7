"""``/jobs``: listing by state across queues, search, one job, and its actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from conveyor.errors import BadInputError
from conveyor.stores.base import JobState
from conveyor.web.admin import reads, schemas, views
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.queues import CURSOR, LIMIT
from conveyor.web.admin.state import AdminState, guards

JOB = Path(alias="jobId", min_length=1, max_length=200)


def text() -> Any:
    """A fresh optional text parameter: FastAPI keeps per-parameter state (its alias) in the
    object, so one shared among parameters would make them all read the same name."""
    return Query(None, min_length=1, max_length=200)


def job_routes(admin: AdminState) -> APIRouter:
    viewer, operator = guards(admin)
    app = admin.app
    router = APIRouter(prefix="/jobs", tags=["jobs"])

    @router.get("", summary="Jobs in one state (of every queue, or of one), newest first")
    async def list_jobs(
        state: JobState = Query(JobState.WAITING),
        queue: str | None = text(),
        cursor: str | None = CURSOR,
        limit: int = LIMIT,
        _: Principal = Depends(viewer),
    ) -> schemas.JobPageOut:
        page = await app.jobs.list_page(state, queue, cursor=cursor, limit=limit)
        return schemas.JobPageOut(jobs=[views.job_summary(j) for j in page.jobs], next=page.next)

    @router.get(
        "/search",
        summary="Find jobs by id, id prefix, task, error or a searchable payload field",
        description=(
            "Every criterion given must match; each is one index of the store, and a call"
            " examines a bounded number of candidates (a page may be short while `next` is"
            " set). `field` is `name=value` for a field its task declares searchable"
            " (`@app.task(search=[...])`)."
        ),
    )
    async def search(
        id: str | None = text(),
        id_prefix: str | None = text(),
        task: str | None = text(),
        error_type: str | None = text(),
        error_word: str | None = text(),
        field: str | None = Query(None, min_length=3, max_length=500, pattern=r"^[^=]+=.+$"),
        queue: str | None = text(),
        state: JobState | None = None,
        cursor: str | None = CURSOR,
        limit: int = LIMIT,
        _: Principal = Depends(viewer),
    ) -> schemas.JobPageOut:
        pair = None
        if field is not None:
            name, _sep, value = field.partition("=")
            pair = (name.strip(), value)
        if not any((id, id_prefix, task, error_type, error_word, pair)):
            raise BadInputError(
                "give a criterion: id, id_prefix, task, error_type, error_word or field"
            )
        page = await app.jobs.search(
            queue=queue,
            state=state,
            job_id=id,
            id_prefix=id_prefix,
            task=task,
            error_type=error_type,
            error_word=error_word,
            field=pair,
            cursor=cursor,
            limit=limit,
        )
        return schemas.JobPageOut(jobs=[views.job_summary(j) for j in page.jobs], next=page.next)

    @router.get("/{jobId}", summary="One job in full: data, progress, logs, error, timeline, flow")
    async def get_job(job_id: str = JOB, _: Principal = Depends(viewer)) -> schemas.JobDetail:
        return await reads.job_detail(app, job_id)

    @router.post("/{jobId}/retry", summary="Retry a failed or cancelled job")
    async def retry(
        request: Request, job_id: str = JOB, who: Principal = Depends(operator)
    ) -> schemas.JobDetail:
        await app.jobs.retry(job_id)
        await admin.audit(request, who, "job.retry", f"job:{job_id}", {"retried": 1})
        return await reads.job_detail(app, job_id)

    @router.post("/{jobId}/promote", summary="Run a delayed (or backing-off) job now")
    async def promote(
        request: Request, job_id: str = JOB, who: Principal = Depends(operator)
    ) -> schemas.JobDetail:
        await app.jobs.promote(job_id)
        await admin.audit(request, who, "job.promote", f"job:{job_id}")
        return await reads.job_detail(app, job_id)

    @router.post("/{jobId}/cancel", summary="Cancel a job (a running one by its worker)")
    async def cancel(
        request: Request, job_id: str = JOB, who: Principal = Depends(operator)
    ) -> schemas.CancelOut:
        result = await app.jobs.cancel(job_id)
        await admin.audit(request, who, "job.cancel", f"job:{job_id}")
        return schemas.CancelOut(id=job_id, result=result.value)  # type: ignore[arg-type]

    @router.delete("/{jobId}", status_code=204, summary="Remove a job")
    async def remove(
        request: Request, job_id: str = JOB, who: Principal = Depends(operator)
    ) -> Response:
        await app.jobs.remove(job_id)
        await admin.audit(request, who, "job.remove", f"job:{job_id}", {"removed": 1})
        return Response(status_code=204)

    return router
