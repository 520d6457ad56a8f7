"""Terminal output: a live progress bar per job, and the summary table at the end.

Everything here reads :class:`conveyor.Job` snapshots (``job.status``,
``job.progress``, ``job.attempts``, ``job.result``, ``job.error``); nothing
talks to the worker directly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from rich import box
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.logging import RichHandler
from rich.padding import Padding
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from conveyor import Job, JobState

STYLES = {
    JobState.COMPLETED: "green",
    JobState.FAILED: "red",
    JobState.CANCELLED: "red",
    JobState.ACTIVE: "cyan",
    JobState.SCHEDULED: "yellow",
    JobState.WAITING: "dim",
}


def route_logs_to(console: Console) -> None:
    """Print conveyor's log lines above the live progress bars, not across them.

    conveyor sets up structlog itself unless the application already has;
    configuring it first is how an application takes over its log output.
    """
    handler = RichHandler(console=console, show_path=False, markup=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.dev.ConsoleRenderer(colors=False, pad_event=0),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class JobBoard:
    """One progress bar per job, redrawn from the latest snapshots."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=16),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:>13}"),
            TextColumn("{task.fields[state]}"),
            console=console,
        )
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> JobBoard:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def add(self, job: Job[Any], label: str) -> None:
        self._bars[job.id] = self.progress.add_task(label, rows="", state="")
        self.update(job)

    def update(self, job: Job[Any]) -> None:
        done, total = rows_done(job)
        self.progress.update(
            self._bars[job.id],
            completed=done,
            # No total yet: a pulsing bar while rows may still come, an empty one after.
            total=total or (1 if job.status.is_finished else None),
            rows=f"{done:,}/{total:,}" if total else "",
            state=f"[{STYLES[job.status]}]{describe(job)}",
        )


def rows_done(job: Job[Any]) -> tuple[int, int]:
    progress = job.progress
    if isinstance(progress, dict):
        return int(progress.get("rows", 0)), int(progress.get("total", 0))
    return 0, 0


def describe(job: Job[Any]) -> str:
    error = job.error
    match job.status:
        case JobState.WAITING if job.attempts == 0:
            return "waiting"
        case JobState.WAITING | JobState.SCHEDULED if error is not None:
            return f"retrying: {error.type}"
        case JobState.ACTIVE:
            stage = job.progress.get("stage") if isinstance(job.progress, dict) else None
            return f"{stage or 'starting'}, attempt {job.attempts}"
        case JobState.COMPLETED:
            return "completed"
        case JobState.FAILED:
            return f"failed after {job.attempts} attempts"
    return job.status.value


def summary(jobs: Sequence[Job[Any]], title: str) -> Group:
    """A row per job, then the valid amounts per currency.

    Under each file name: its top three findings, or the error it failed with.
    """
    table = Table(title=title, title_justify="left", show_footer=True, box=box.SIMPLE_HEAD)
    table.add_column("File, top findings", footer="all files", max_width=44)
    table.add_column("Status", no_wrap=True)
    table.add_column("Attempts", justify="right")
    for name in ("Rows", "Valid", "Invalid"):
        total = sum(int((job.result or {}).get(name.lower(), 0)) for job in jobs)
        table.add_column(name, justify="right", footer=f"{total:,}")
    for job in jobs:
        result: dict[str, Any] = job.result or {}
        status = f"[{STYLES[job.status]}]{job.status.value}"
        counts = [
            f"{result[key]:,}" if key in result else "" for key in ("rows", "valid", "invalid")
        ]
        file = Group(job_file(job), Padding(explain(job), (0, 0, 0, 2)))
        table.add_row(file, status, str(job.attempts), *counts)
    return Group(table, *valid_amounts(jobs))


def job_file(job: Job[Any]) -> Text:
    args, _kwargs = job.args
    return Text(Path(args[0]).name)


def explain(job: Job[Any]) -> Text:
    """The top three findings of a completed job, or why it did not complete."""
    error = job.error
    if job.status is not JobState.COMPLETED:
        return Text(f"{error.type}: {error.message}" if error else "", style="red")
    findings: dict[str, int] = (job.result or {}).get("findings", {})
    top = [f"{rule} {count}" for rule, count in list(findings.items())[:3]]
    return Text("\n".join(top), style="dim")


def valid_amounts(jobs: Sequence[Job[Any]]) -> list[RenderableType]:
    totals: dict[str, Decimal] = {}
    for job in jobs:
        for currency, amount in (job.result or {}).get("totals", {}).items():
            totals[currency] = totals.get(currency, Decimal(0)) + Decimal(amount)
    if not totals:
        return []
    amounts = [f"{currency} {total:,.2f}" for currency, total in sorted(totals.items())]
    return [Text("Valid invoices by currency"), Columns(amounts, padding=(0, 3))]
