"""``/schedules``: list with next fire time, add, remove, pause, resume, trigger now."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request, Response

from conveyor.errors import BadInputError, NotFoundError
from conveyor.jobs.arguments import validate_call_arguments
from conveyor.jobs.options import Call, EnqueueOptions
from conveyor.web.admin import reads, schemas, views
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.state import AdminState, guards

NAME = Path(alias="name", min_length=1, max_length=150)


def schedule_routes(admin: AdminState) -> APIRouter:
    viewer, operator = guards(admin)
    app = admin.app
    router = APIRouter(prefix="/schedules", tags=["schedules"])

    @router.get("", summary="Every schedule, with its next fire time")
    async def list_schedules(_: Principal = Depends(viewer)) -> list[schemas.ScheduleOut]:
        return [views.schedule_out(s) for s in await app.schedules.list()]

    @router.post("", status_code=201, summary="Add or replace a schedule of a registered task")
    async def add(
        body: schemas.ScheduleIn, request: Request, who: Principal = Depends(operator)
    ) -> schemas.ScheduleOut:
        task = app.tasks.get(body.task)
        if task is None:
            raise NotFoundError(f"no task named {body.task!r} is registered")
        if (body.cron is None) == (body.every_seconds is None):
            raise BadInputError("give either cron or every_seconds")
        validate_call_arguments(task, body.args, body.kwargs)
        call = Call(task, tuple(body.args), body.kwargs, EnqueueOptions())
        schedule = await app.schedules.add(
            call,
            cron=body.cron,
            every=body.every_seconds,
            tz=body.tz,
            name=body.name,
            missed=body.missed,
        )
        await admin.audit(request, who, "schedule.add", f"schedule:{schedule.name}")
        return views.schedule_out(schedule)

    @router.delete("/{name}", status_code=204, summary="Remove a schedule")
    async def remove(
        request: Request, name: str = NAME, who: Principal = Depends(operator)
    ) -> Response:
        await app.schedules.remove(name)
        await admin.audit(request, who, "schedule.remove", f"schedule:{name}", {"removed": 1})
        return Response(status_code=204)

    @router.post("/{name}/pause", summary="Stop firing a schedule until resumed")
    async def pause(
        request: Request, name: str = NAME, who: Principal = Depends(operator)
    ) -> schemas.ScheduleOut:
        schedule = await app.schedules.pause(name)
        await admin.audit(request, who, "schedule.pause", f"schedule:{name}")
        return views.schedule_out(schedule)

    @router.post("/{name}/resume", summary="Fire a paused schedule again")
    async def resume(
        request: Request, name: str = NAME, who: Principal = Depends(operator)
    ) -> schemas.ScheduleOut:
        schedule = await app.schedules.resume(name)
        await admin.audit(request, who, "schedule.resume", f"schedule:{name}")
        return views.schedule_out(schedule)

    @router.post("/{name}/trigger", summary="Enqueue a schedule's job now")
    async def trigger(
        request: Request, name: str = NAME, who: Principal = Depends(operator)
    ) -> schemas.JobDetail:
        job = await app.schedules.trigger(name)
        await admin.audit(request, who, "schedule.trigger", f"schedule:{name} job:{job.id}")
        return await reads.job_detail(app, job.id)

    return router
