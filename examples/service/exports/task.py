"""The export job, and the cleanup of expired exports.

Rows are streamed from the database in partitions (a server-side cursor on
PostgreSQL, ``fetchmany`` on SQLite) and written as they come, so memory
stays flat whatever the range: at most one partition is held. The file is
written under a temporary name and renamed when complete, so a download
never sees half a file; a retry starts the file over.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select, update

from conveyor import Backoff, NonRetryableError, Retention, current_job
from examples.service.analytics.models import AnalyticsEvent, Publisher
from examples.service.backbone import backbone, database, metrics, settings
from examples.service.database import iso, now_utc

from .models import Export

log = structlog.get_logger("service.exports")
COLUMNS = ("event_id", "publisher_id", "name", "value", "occurred_at", "day", "hour")
PARTITION = 2_000
RETRIES = 2
EXPORTS = settings.data_dir / "exports"


def export_path(export_id: str) -> Path:
    return EXPORTS / f"{export_id}.csv"


def _rows_query(export: Export) -> Any:
    query = (
        select(
            AnalyticsEvent.id,
            AnalyticsEvent.publisher_id,
            AnalyticsEvent.name,
            AnalyticsEvent.value,
            AnalyticsEvent.occurred_at,
            AnalyticsEvent.day,
            AnalyticsEvent.hour,
        )
        .join(Publisher, Publisher.id == AnalyticsEvent.publisher_id)
        .where(
            Publisher.account_id == export.account_id,
            AnalyticsEvent.day.between(export.start, export.end),
        )
    )
    if export.publisher_id is not None:
        query = query.where(AnalyticsEvent.publisher_id == export.publisher_id)
    return query


@backbone.task(
    concurrency=2,
    retries=RETRIES,
    backoff=Backoff.exponential(base=1.0, factor=2.0, max_delay=60.0),
    timeout=3600,
    retention=Retention(completed=100, completed_for=3600, failed=1000, failed_for=86_400),
)
async def run_export(export_id: str) -> dict[str, Any]:
    """Write the export's rows to its CSV file; returns the row count and size."""
    job = current_job()
    async with database.writing() as session:
        export = await session.get(Export, export_id)
        if export is None:
            raise NonRetryableError(f"export {export_id} no longer exists")
        export.status = "processing"
    try:
        rows, size = await _write(export, job.set_progress)
    except Exception as exc:
        if isinstance(exc, NonRetryableError) or job.attempt > RETRIES:
            await _set(export_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            metrics.exports.labels("failed").inc()
        raise
    done = now_utc()
    await _set(
        export_id,
        status="completed",
        rows=rows,
        size_bytes=size,
        completed_at=done,
        expires_at=done + timedelta(seconds=settings.export_ttl_seconds),
    )
    metrics.exports.labels("completed").inc()
    return {"rows": rows, "sizeBytes": size}


async def _write(export: Export, progress: Any) -> tuple[int, int]:
    query = _rows_query(export)
    async with database.reading() as session:
        total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        if total > settings.max_export_rows:
            raise NonRetryableError(
                f"{total} rows is over the {settings.max_export_rows} an export holds;"
                " narrow the range"
            )
        progress({"rows": 0, "total": total, "percent": 0.0})
        EXPORTS.mkdir(parents=True, exist_ok=True)
        final, partial = export_path(export.id), export_path(export.id).with_suffix(".part")
        written = 0
        with partial.open("w", newline="", encoding="utf-8") as out:
            await asyncio.to_thread(out.write, _csv([COLUMNS]))
            stream = await session.stream(
                query.order_by(AnalyticsEvent.id).execution_options(yield_per=PARTITION)
            )
            async for partition in stream.partitions(PARTITION):
                lines = [
                    (i, p, n, repr(v), iso(at), day.isoformat(), h)
                    for i, p, n, v, at, day, h in partition
                ]
                await asyncio.to_thread(out.write, _csv(lines))
                written += len(lines)
                percent = round(100 * written / total, 1) if total else 100.0
                progress({"rows": written, "total": total, "percent": percent})
    partial.replace(final)
    return written, final.stat().st_size


def _csv(lines: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


async def _set(export_id: str, **values: Any) -> None:
    async with database.writing() as session:
        await session.execute(update(Export).where(Export.id == export_id).values(values))


@backbone.task(every=settings.export_cleanup_seconds, retries=2)
async def cleanup_exports() -> int:
    """Remove the files of exports past ``expires_at``; the export says ``expired``."""
    async with database.writing() as session:
        expired = list(
            await session.scalars(
                select(Export.id).where(Export.status == "completed", Export.expires_at < now_utc())
            )
        )
        if expired:
            await session.execute(
                update(Export).where(Export.id.in_(expired)).values(status="expired")
            )
    for export_id in expired:
        export_path(export_id).unlink(missing_ok=True)
    metrics.exports.labels("expired").inc(len(expired))
    if expired:
        log.info("expired exports removed", count=len(expired))
    return len(expired)
