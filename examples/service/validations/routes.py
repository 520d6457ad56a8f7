"""``/api/v1/validations``: upload a billing CSV, follow its validation, read its findings."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse

from conveyor import NotFoundError, PayloadTooLargeError, rate_limit
from examples.service.accounts.keys import Authenticated
from examples.service.backbone import backbone, database, settings
from examples.service.repository import MAX_PAGE, Repository

from .models import Validation, ValidationFinding
from .task import UPLOADS, upload_path, validate_upload

router = APIRouter(prefix="/validations", tags=["validations"])
CHUNK = 256 * 1024


@router.post(
    "",
    status_code=202,
    dependencies=[Depends(rate_limit("analysis"))],
    responses={202: {"description": "Stored and queued; poll the validation."}},
)
async def upload(
    caller: Authenticated, file: Annotated[UploadFile, File(description="A billing CSV.")]
) -> JSONResponse:
    """Store the CSV and queue its validation; answers at once (202)."""
    validation_id = "val_" + secrets.token_hex(8)
    size = await _store(file, upload_path(validation_id))
    job_id = f"validation:{validation_id}"
    async with database.writing() as session:
        session.add(
            Validation(
                id=validation_id,
                account_id=caller.account_id,
                filename=(file.filename or "upload.csv")[:255],
                size_bytes=size,
                job_id=job_id,
            )
        )
    job = await validate_upload.options(job_id=job_id).enqueue(validation_id)
    body = {"validationId": validation_id, "status": "queued", "jobId": job.id}
    return JSONResponse(body, status_code=202, headers={"Location": f"./{validation_id}"})


async def _store(file: UploadFile, path: Path) -> int:
    """Copy the upload in chunks, refusing it past ``max_upload_bytes`` (nothing kept)."""
    await anyio.Path(UPLOADS).mkdir(parents=True, exist_ok=True)
    size = 0
    async with await anyio.open_file(path, "wb") as out:
        while chunk := await file.read(CHUNK):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                await out.aclose()
                await anyio.Path(path).unlink(missing_ok=True)
                raise PayloadTooLargeError(size, settings.max_upload_bytes, "the upload")
            await out.write(chunk)
    return size


async def _owned(validation_id: str, account_id: int) -> Validation:
    async with database.reading() as session:
        validation = await session.get(Validation, validation_id)
    if validation is None or validation.account_id != account_id:
        raise NotFoundError(f"no validation {validation_id}")
    return validation


@router.get("/{validation_id}")
async def status(validation_id: str, caller: Authenticated) -> dict[str, Any]:
    """Status, progress (while it runs) and results (once it has finished)."""
    validation = await _owned(validation_id, caller.account_id)
    progress: dict[str, Any] = {"stage": "done", "percent": 100.0}
    attempts = None
    if validation.status in ("queued", "processing"):
        job = await backbone.jobs.get(validation.job_id)
        attempts = job.attempts
        progress = job.progress if isinstance(job.progress, dict) else {"percent": 0.0}
    return {
        "validationId": validation.id,
        "status": validation.status,
        "filename": validation.filename,
        "sizeBytes": validation.size_bytes,
        "jobId": validation.job_id,
        "attempts": attempts,
        "progress": progress,
        "result": validation.summary if validation.status == "completed" else None,
        "error": validation.error,
        "createdAt": validation.created_at.isoformat(),
        "finishedAt": validation.finished_at.isoformat() if validation.finished_at else None,
    }


@router.get("/{validation_id}/findings")
async def findings(
    validation_id: str,
    caller: Authenticated,
    rule: str | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The findings of a validation, by line (one rule's with ``rule=``)."""
    await _owned(validation_id, caller.account_id)
    where = [ValidationFinding.validation_id == validation_id]
    if rule is not None:
        where.append(ValidationFinding.rule == rule)
    async with database.reading() as session:
        found = await Repository(ValidationFinding, session, "findings").find(
            where=where,
            page=page,
            size=size,
            order_by=[ValidationFinding.line, ValidationFinding.id],
        )
    return found.to_json(
        lambda f: {"line": f.line, "rule": f.rule, "column": f.column_name, "message": f.message}
    )


@router.get("")
async def list_validations(
    caller: Authenticated,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    async with database.reading() as session:
        found = await Repository(Validation, session).find(
            where=[Validation.account_id == caller.account_id],
            page=page,
            size=size,
            order_by=[Validation.created_at.desc(), Validation.id],
        )
    return found.to_json(
        lambda v: {"validationId": v.id, "status": v.status, "filename": v.filename}
    )
