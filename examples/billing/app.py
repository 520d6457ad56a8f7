"""The billing example's conveyor app: one task that validates an invoice export.

    app = Conveyor()   # embedded: one SQLite file under ./.conveyor, no server

``CONVEYOR_URL`` points it elsewhere (``sqlite:////tmp/jobs.db``, ``memory://``);
``BILLING_DATA_DIR`` moves the exports and the billing database.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import date
from pathlib import Path
from typing import Any

from conveyor import Conveyor, current_job

from . import ledger, rules

app = Conveyor()

DATA_DIR = Path(os.environ.get("BILLING_DATA_DIR") or Path(__file__).parent / "data")
DATABASE = DATA_DIR / "billing.db"
PROGRESS_EVERY = 250
"""Report progress every this many rows (conveyor buffers it; it costs no round trip)."""

GZIP_MAGIC = b"\x1f\x8b"


class CorruptFileError(Exception):
    """The file cannot be read as an invoice export at all.

    A plain ``Exception`` on purpose, so conveyor retries it: exports land on a
    shared drive, and one still being copied looks corrupt for a moment. If it
    is still unreadable after the retries, the job fails and a person looks.
    """


@app.task(retries=2, backoff=0.5, timeout=300)
def validate_billing_file(path: str) -> dict[str, Any]:
    """Validate one export, store its rows and findings, and return a summary.

    A plain (sync) function: conveyor runs it in a worker thread, so parsing
    and ``sqlite3`` never block the worker's event loop. Safe to run again on
    the same file: its earlier rows and findings are replaced.
    """
    job = current_job()
    file = Path(path)
    header, lines = read_export(file)
    total = len(lines)
    job.set_progress(progress("validating", 0, total))

    checker = rules.RowChecker(header, today=date.today())
    checked = []
    for done, (line, cells) in enumerate(lines, start=1):
        checked.append(checker.check(line, cells))
        if done % PROGRESS_EVERY == 0:
            job.set_progress(progress("validating", done, total))

    job.set_progress(progress("saving", total, total))
    ledger.replace_file(DATABASE, file.name, checked)
    summary = summarise(file.name, checked)
    job.log(f"{file.name}: {summary['valid']} valid, {summary['invalid']} invalid rows")
    return summary


def read_export(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows (with their line numbers) of a CSV export.

    Exports are a few MB, so reading one whole is fine; it also gives the
    total that progress is reported against.
    """
    data = file.read_bytes()
    if not data.strip():
        raise CorruptFileError(f"{file.name} is empty")
    if data.startswith(GZIP_MAGIC):
        raise CorruptFileError(f"{file.name} is gzip-compressed, not CSV text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise CorruptFileError(
            f"{file.name} is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start})"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [column for column in rules.COLUMNS if column not in header]
        if missing:
            raise CorruptFileError(f"{file.name} has no {', '.join(missing)} column(s)")
        return header, [(reader.line_num, cells) for cells in reader if cells]
    except csv.Error as exc:
        raise CorruptFileError(f"{file.name} line {reader.line_num}: {exc}") from None


def progress(stage: str, done: int, total: int) -> dict[str, Any]:
    percent = round(100 * done / total, 1) if total else 100.0
    return {"stage": stage, "rows": done, "total": total, "percent": percent}


def summarise(file: str, rows: list[rules.CheckedRow]) -> dict[str, Any]:
    """The job's result: the file's name and its rows' summary (``rules.summary``)."""
    return {"file": file, **rules.summary(rows)}
