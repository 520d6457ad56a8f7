"""The validation job: read the upload, store its rows, run the billing rules, save.

Progress (``job.progress``): 0-50 % parsing, 50-75 % inserting records,
75-90 % rules, 90-100 % saving results. Parsing and the rules are CPU work
and run in a thread, so the worker's event loop (in ``conveyor serve``, the
web server's too) keeps answering. A retry starts over: the rows an earlier
attempt stored are deleted first. The upload is deleted once the validation
has finished, either way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, update

from conveyor import Backoff, Retention, current_job
from examples.billing import rules
from examples.service.backbone import backbone, database, metrics, settings
from examples.service.database import now_utc

from .models import Validation, ValidationFinding, ValidationRecord
from .reading import CorruptUploadError, ParsedUpload, parse

RETRIES = 2
"""Three attempts in all."""
INSERT_BATCH = 2_000
UPLOADS = settings.data_dir / "uploads"


def upload_path(validation_id: str) -> Path:
    return UPLOADS / f"{validation_id}.csv"


def report(stage: str, percent: float, **more: Any) -> None:
    current_job().set_progress({"stage": stage, "percent": round(percent, 1), **more})


@backbone.task(
    concurrency=2,
    retries=RETRIES,
    backoff=Backoff.exponential(base=1.0, factor=2.0, max_delay=60.0),
    timeout=600,
    retention=Retention(completed=100, completed_for=3600, failed=1000, failed_for=86_400),
    non_retryable=(CorruptUploadError,),
)
async def validate_upload(validation_id: str) -> dict[str, Any]:
    """Validate one uploaded billing CSV; returns the summary stored on the validation."""
    path = upload_path(validation_id)
    try:
        summary = await _validate(validation_id, path)
    except BaseException as exc:
        last = isinstance(exc, CorruptUploadError) or current_job().attempt > RETRIES
        if last and isinstance(exc, Exception):
            await _finish(validation_id, "failed", error=f"{type(exc).__name__}: {exc}")
            path.unlink(missing_ok=True)
        raise
    await _finish(validation_id, "completed", summary=summary)
    path.unlink(missing_ok=True)
    return summary


async def _validate(validation_id: str, path: Path) -> dict[str, Any]:
    await _start(validation_id)
    data = await asyncio.to_thread(path.read_bytes)
    report("parsing", 0)
    parsed = await asyncio.to_thread(
        parse, data, lambda done, total: report("parsing", 50 * min(done / total, 1))
    )
    await _insert_records(validation_id, parsed)
    report("rules", 75)
    checked = await asyncio.to_thread(_check, parsed)
    report("saving", 90)
    summary = summarise(parsed, checked)
    await _save_results(validation_id, parsed, checked, summary)
    report("saving", 100)
    return summary


async def _start(validation_id: str) -> None:
    async with database.writing() as session:
        await session.execute(
            delete(ValidationFinding).where(ValidationFinding.validation_id == validation_id)
        )
        await session.execute(
            delete(ValidationRecord).where(ValidationRecord.validation_id == validation_id)
        )
        await session.execute(
            update(Validation)
            .where(Validation.id == validation_id)
            .values(status="processing", error=None)
        )


async def _insert_records(validation_id: str, parsed: ParsedUpload) -> None:
    total = len(parsed.rows)
    for start in range(0, total, INSERT_BATCH):
        batch = parsed.rows[start : start + INSERT_BATCH]
        rows = [
            {
                "validation_id": validation_id,
                "line": line,
                **{c: v for c, v in zip(parsed.header, cells, strict=False) if c in rules.COLUMNS},
            }
            for line, cells in batch
        ]
        # One short transaction per batch: other writers (requests) get the lock between.
        async with database.writing() as session:
            await session.execute(insert(ValidationRecord), rows)
        report("inserting", 50 + 25 * (start + len(batch)) / total, rows=start + len(batch))


def _check(parsed: ParsedUpload) -> list[rules.CheckedRow]:
    checker = rules.RowChecker(parsed.header, today=now_utc().date())
    return [checker.check(line, cells) for line, cells in parsed.rows]


async def _save_results(
    validation_id: str,
    parsed: ParsedUpload,
    checked: list[rules.CheckedRow],
    summary: dict[str, Any],
) -> None:
    findings = [
        {
            "validation_id": validation_id,
            "line": row.line,
            "rule": finding.rule,
            "column_name": finding.column,
            "message": finding.message,
        }
        for row in checked
        for finding in row.findings
    ]
    invalid = [row.line for row in checked if not row.valid]
    async with database.writing() as session:
        for start in range(0, len(findings), INSERT_BATCH):
            await session.execute(insert(ValidationFinding), findings[start : start + INSERT_BATCH])
        records = ValidationRecord.validation_id == validation_id
        await session.execute(update(ValidationRecord).where(records).values(valid=True))
        for start in range(0, len(invalid), 500):
            lines = invalid[start : start + 500]
            await session.execute(
                update(ValidationRecord)
                .where(records, ValidationRecord.line.in_(lines))
                .values(valid=False)
            )
        await session.execute(
            update(Validation)
            .where(Validation.id == validation_id)
            .values(encoding=parsed.encoding, delimiter=parsed.delimiter, summary=summary)
        )


async def _finish(
    validation_id: str,
    status: str,
    *,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    async with database.writing() as session:
        values: dict[str, Any] = {"status": status, "error": error, "finished_at": now_utc()}
        if summary is not None:
            values["summary"] = summary
        await session.execute(
            update(Validation).where(Validation.id == validation_id).values(values)
        )
    metrics.validations.labels(status).inc()
    if summary is not None:
        metrics.validated_rows.labels("valid").inc(summary["valid"])
        metrics.validated_rows.labels("invalid").inc(summary["invalid"])


def summarise(parsed: ParsedUpload, checked: list[rules.CheckedRow]) -> dict[str, Any]:
    """The billing example's summary of the rows (``rules.summary``), with how the file
    was read."""
    return {
        **rules.summary(checked),
        "encoding": parsed.encoding,
        "delimiter": parsed.delimiter,
    }
