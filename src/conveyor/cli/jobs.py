"""``conveyor jobs list | show | wait | retry | cancel | remove``: one job at a time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Column, Table
from rich.text import Text

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError, describe
from conveyor.cli.loading import admin_app, run, store_options
from conveyor.cli.output import (
    NARROW,
    cell,
    compact_json,
    console,
    json_option,
    print_json,
    short_time,
    table_time,
)
from conveyor.errors import JobFailedError
from conveyor.jobs.job import Job
from conveyor.stores.base import CancelResult, JobState, LogLine

STATES = [s.value for s in JobState]


@click.group()
def jobs() -> None:
    """Inspect and administer jobs."""


TIME_COLUMNS: dict[JobState, tuple[str, Callable[[Job[Any]], datetime | None]]] = {
    JobState.SCHEDULED: ("runs at", lambda job: job.scheduled_for),
    JobState.WAITING: ("enqueued", lambda job: job.created_at),
    JobState.WAITING_CHILDREN: ("enqueued", lambda job: job.created_at),
    JobState.ACTIVE: ("started", lambda job: job.started_at),
    JobState.COMPLETED: ("finished", lambda job: job.finished_at),
    JobState.FAILED: ("finished", lambda job: job.finished_at),
    JobState.CANCELLED: ("finished", lambda job: job.finished_at),
}
"""Per listed state, the one time worth a column."""


@jobs.command("list")
@click.option("--state", type=click.Choice(STATES), default="waiting", show_default=True)
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@store_options
@json_option
def list_jobs(
    state: str,
    queue: str | None,
    limit: int,
    offset: int,
    as_json: bool,
    app_path: str | None,
    url: str | None,
) -> None:
    """List the jobs in one state, newest first."""
    found = run(
        admin_app(app_path, url), lambda a: a.jobs.list(state, queue, offset=offset, limit=limit)
    )
    if as_json:
        print_json([job.to_dict() for job in found])
        return
    out = console()
    out.print(jobs_table(found, JobState(state), out.width) if found else f"no {state} jobs")


MAX_WHOLE_ID = 32
"""Ids up to this long (conveyor's own are 32) are never folded; a caller's may be 200."""

TIME_WIDTH = len("12-31 23:59:59")


def jobs_table(found: list[Job[Any]], state: JobState, width: int) -> Table:
    """One row per job, readable at ``width`` columns: ids and task names fold, never
    get cut. Below ``NARROW`` columns the attempts go, and the queue moves to the
    title when every job is on the same one, else under the task's name."""
    heading, when = TIME_COLUMNS[state]
    narrow = width < NARROW
    queues = sorted({job.queue for job in found})
    title = f"queue {queues[0]}" if narrow and len(queues) == 1 else None
    longest_id = max(len(job.id) for job in found)
    columns = [Column("id", overflow="fold", width=min(longest_id, MAX_WHOLE_ID))]
    if narrow:
        columns.append(Column("task" if title else "task / queue", overflow="fold"))
    else:
        columns += [Column("task", overflow="fold"), Column("queue", overflow="fold")]
        columns.append(Column("attempts", justify="right"))
    columns.append(Column(f"{heading} (UTC)", width=TIME_WIDTH, overflow="fold"))
    table = Table(*columns, title=title)
    for job in found:
        time = table_time(when(job))
        if not narrow:
            table.add_row(*(cell(v) for v in (job.id, job.task, job.queue, job.attempts, time)))
        elif title:
            table.add_row(cell(job.id), cell(job.task), time)
        else:
            task = Text(job.task).append(f"\n{job.queue}", style="dim")
            table.add_row(cell(job.id), task, time)
    return table


@jobs.command("show")
@click.argument("job_id", metavar="ID")
@store_options
@json_option
def show_job(job_id: str, as_json: bool, app_path: str | None, url: str | None) -> None:
    """Show every field of one job, its error with traceback, and its log."""

    async def job_and_logs(app: Conveyor) -> tuple[Job[Any], list[LogLine]]:
        job = await app.jobs.get(job_id)
        return job, await job.logs()

    job, logs = run(admin_app(app_path, url), job_and_logs)
    data = job.to_dict()
    if as_json:
        data["logs"] = [{"at": log_time(line).isoformat(), "line": line.line} for line in logs]
        print_json(data)
        return
    print_job(data, logs)


def log_time(line: LogLine) -> datetime:
    return datetime.fromtimestamp(line.at / 1000, UTC)


def print_job(data: dict[str, Any], logs: list[LogLine]) -> None:
    """A job as a field/value grid, then its traceback and log lines, if any."""
    out = console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    error = data.pop("error")
    for key, value in data.items():
        shown = compact_json(value) if key in ("args", "kwargs", "progress", "result") else value
        grid.add_row(key, cell(shown))
    if error is not None:
        grid.add_row("error", cell(f"{error['type']}: {error['message']}"))
    out.print(grid)
    if error is not None and error.get("traceback"):
        out.print("\ntraceback:", style="bold")
        out.print(Text(error["traceback"].rstrip()))
    if logs:
        out.print("\nlog:", style="bold")
        for line in logs:
            out.print(Text(f"{short_time(log_time(line))}  {line.line}"))


@jobs.command("wait")
@click.argument("job_id", metavar="ID")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", help="Give up after.")
@store_options
@json_option
def wait_job(
    job_id: str, timeout: float | None, as_json: bool, app_path: str | None, url: str | None
) -> None:
    """Wait until a job finishes and print its result as JSON.

    Exits with 1 (and the error on stderr) if it failed, was cancelled, or
    is still unfinished after --timeout. With --json, prints the whole job.
    """

    async def finished(app: Conveyor) -> tuple[Job[Any], str | None]:
        job = await app.jobs.get(job_id)
        try:
            await job.wait(timeout=timeout)
        except JobFailedError as exc:
            return job, describe(exc)
        except TimeoutError as exc:
            return job, str(exc)
        return job, None

    job, problem = run(admin_app(app_path, url), finished)
    if as_json:
        print_json(job.to_dict())
    elif problem is None:
        click.echo(compact_json(job.result))
    if problem is not None:
        raise CliError(problem)


@jobs.command("retry")
@click.argument("job_id", metavar="ID")
@store_options
def retry_job(job_id: str, app_path: str | None, url: str | None) -> None:
    """Send a failed or cancelled job back to waiting, its attempts reset."""
    job = run(admin_app(app_path, url), lambda a: a.jobs.retry(job_id))
    click.echo(f"job {job.id} is {job.status.value} again")


CANCEL_MESSAGES = {
    CancelResult.CANCELLED: "job {} cancelled",
    CancelResult.REQUESTED: "job {} is running; its worker cancels it within a moment",
    CancelResult.FINISHED: "job {} had already finished; nothing changed",
}


@jobs.command("cancel")
@click.argument("job_id", metavar="ID")
@store_options
def cancel_job(job_id: str, app_path: str | None, url: str | None) -> None:
    """Cancel a job; a running one is stopped by its worker."""
    result = run(admin_app(app_path, url), lambda a: a.jobs.cancel(job_id))
    click.echo(CANCEL_MESSAGES[result].format(job_id))


@jobs.command("remove")
@click.argument("job_id", metavar="ID")
@store_options
def remove_job(job_id: str, app_path: str | None, url: str | None) -> None:
    """Delete a job that is not running (cancel a running one first)."""
    run(admin_app(app_path, url), lambda a: a.jobs.remove(job_id))
    click.echo(f"job {job_id} removed")
