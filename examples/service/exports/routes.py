"""``/api/v1/exports``: request an export, follow it, list them, download the file."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, JSONResponse
from pydantic import Field

from conveyor import BadInputError, NotFoundError, rate_limit
from examples.service.accounts.keys import Authenticated
from examples.service.analytics.routes import owned_publisher
from examples.service.backbone import backbone, database
from examples.service.database import aware, iso, now_utc
from examples.service.inputs import Body, IsoDate
from examples.service.problems import ExportExpired, ExportNotReady
from examples.service.repository import MAX_PAGE, Repository

from .models import Export
from .task import export_path, run_export

router = APIRouter(prefix="/exports", tags=["exports"])
MAX_RANGE_DAYS = 366


class ExportIn(Body):
    start: IsoDate
    end: IsoDate
    publisherId: str | None = Field(default=None, max_length=24)
    format: str = Field(default="csv", pattern="^csv$")


def view(export: Export, progress: Any = None) -> dict[str, Any]:
    expired = export.status == "expired"
    return {
        "exportId": export.id,
        "status": export.status,
        "start": export.start.isoformat(),
        "end": export.end.isoformat(),
        "publisherId": export.publisher_id,
        "jobId": export.job_id,
        "progress": progress,
        "rows": export.rows,
        "sizeBytes": export.size_bytes,
        "error": export.error,
        "createdAt": iso(export.created_at),
        "completedAt": iso(export.completed_at),
        "expiresAt": iso(export.expires_at),
        "downloadUrl": (
            f"/api/v1/exports/{export.id}/download"
            if export.status == "completed" and not expired
            else None
        ),
    }


@router.post("", status_code=202, dependencies=[Depends(rate_limit("exports"))])
async def create_export(body: ExportIn, caller: Authenticated) -> JSONResponse:
    """Export the analytics events of ``start..end`` (days, inclusive) as CSV, in a job."""
    if body.end < body.start or body.end - body.start > timedelta(days=MAX_RANGE_DAYS):
        raise BadInputError(f"start..end must be a range of at most {MAX_RANGE_DAYS} days")
    if body.publisherId is not None:
        await owned_publisher(body.publisherId, caller)
    export_id = "exp_" + secrets.token_hex(8)
    export = Export(
        id=export_id,
        account_id=caller.account_id,
        start=body.start,
        end=body.end,
        publisher_id=body.publisherId,
        job_id=f"export:{export_id}",
    )
    async with database.writing() as session:
        session.add(export)
    await run_export.options(job_id=export.job_id).enqueue(export_id)
    return JSONResponse(view(export), status_code=202)


async def _owned(export_id: str, account_id: int) -> Export:
    async with database.reading() as session:
        export = await session.get(Export, export_id)
    if export is None or export.account_id != account_id:
        raise NotFoundError(f"no export {export_id}")  # not yours is not found: ids stay secret
    return export


@router.get("/{export_id}")
async def get_export(export_id: str, caller: Authenticated) -> dict[str, Any]:
    export = await _owned(export_id, caller.account_id)
    progress = None
    if export.status in ("pending", "processing"):
        try:
            progress = (await backbone.jobs.get(export.job_id)).progress
        except NotFoundError:
            progress = None
    return view(export, progress)


@router.get("")
async def list_exports(
    caller: Authenticated,
    status: str | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    where = [Export.account_id == caller.account_id]
    if status is not None:
        where.append(Export.status == status)
    async with database.reading() as session:
        found = await Repository(Export, session).find(
            where=where, page=page, size=size, order_by=[Export.created_at.desc(), Export.id]
        )
    return found.to_json(view)


@router.get(
    "/{export_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The CSV file."}},
)
async def download(export_id: str, caller: Authenticated) -> FileResponse:
    """The CSV file, to its owner only, until it expires (then 410)."""
    export = await _owned(export_id, caller.account_id)
    if export.status == "expired" or (
        export.expires_at is not None and aware(export.expires_at) < now_utc()
    ):
        raise ExportExpired(f"export {export_id} expired; request it again")
    if export.status != "completed":
        raise ExportNotReady(f"export {export_id} is {export.status}", status_now=export.status)
    path = export_path(export_id)
    if not path.exists():
        raise ExportExpired(f"export {export_id} is no longer on disk; request it again")
    return FileResponse(
        path,
        media_type="text/csv",
        filename=f"analytics-{export.start.isoformat()}-{export.end.isoformat()}.csv",
    )
