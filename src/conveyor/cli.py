"""The ``conveyor`` command line: run workers, enqueue jobs, inspect and administer a store.

    conveyor worker APP [--queues a,b] [--concurrency N] [--burst]
    conveyor enqueue APP TASK [--args JSON] [--kwargs JSON] [--job-id ID] ...
    conveyor jobs list | show ID | wait ID | retry ID | cancel ID | remove ID
    conveyor queues [pause Q | resume Q | clean Q --state S]
    conveyor queues limit Q [--concurrency N] [--rate N/PERIOD] [--clear]   (cli_limits.py)
    conveyor queues backoff Q SECONDS                                       (cli_limits.py)
    conveyor events tail [--queue Q] [--job ID] | groups
    conveyor events dlq list | show ID | replay ID|--all | purge
    conveyor schedules list | add APP TASK --cron EXPR | remove NAME   (cli_schedules.py)
    conveyor ratelimit policies | usage POLICY KEY | reset POLICY KEY  (cli_ratelimit.py)

``APP`` is ``module.path:attribute`` naming a :class:`~conveyor.Conveyor`.
Admin commands (``jobs``, ``queues``) find their store through ``--app`` or
``--url`` (``CONVEYOR_APP`` / ``CONVEYOR_URL``), else the embedded default.

Expected failures (every ``OperationalError``, a bad APP, bad JSON) print one
``error: ...`` line on stderr and exit with 1; usage errors exit with 2.
Read commands print a rich table, or with ``--json`` only JSON on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from conveyor import __version__
from conveyor.app import Conveyor
from conveyor.errors import ConfigError, JobFailedError, OperationalError, TaskNotFoundError
from conveyor.jobs.job import Job
from conveyor.jobs.task import Task
from conveyor.jobs.worker import WorkerStats
from conveyor.stores.base import CancelResult, JobEvent, JobEventKind, JobState, LogLine

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

STATES = [s.value for s in JobState]
CLEANABLE_STATES = [s.value for s in JobState if s is not JobState.ACTIVE]


# -- errors ------------------------------------------------------------------------


class CliError(click.ClickException):
    """An expected failure: shown as one ``error: ...`` line on stderr, exit code 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def describe(exc: OperationalError) -> str:
    """An operational error as one line (a ConfigError lists its problems with ``;``)."""
    if isinstance(exc, ConfigError):
        return "invalid conveyor configuration: " + "; ".join(exc.problems)
    return " ".join(str(exc).split()) or type(exc).__name__


class ConveyorGroup(click.Group):
    """The root group: turns operational errors from any command into a ``CliError``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperationalError as exc:
            raise CliError(describe(exc)) from None


# -- finding the app -----------------------------------------------------------------


def load_app(path: str) -> Conveyor:
    """Import ``module.path:attribute`` (from the current directory too) as a Conveyor."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise CliError(f"APP must look like 'module.path:attribute', got {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing APP module is a bad path; a failed import inside it is a bug to show.
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise
        raise CliError(f"cannot import module {module_name!r} (from APP {path!r})") from None
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, Conveyor):
        raise CliError(f"{path!r} is a {type(target).__name__}, not a conveyor.Conveyor")
    return target


def store_options(fn: F) -> F:
    """``--app`` / ``--url``: which store an admin command works on."""
    fn = click.option(
        "--url",
        envvar="CONVEYOR_URL",
        metavar="URL",
        show_envvar=True,
        help="Store URL, e.g. sqlite:////abs/path.db.",
    )(fn)
    return click.option(
        "--app",
        "app_path",
        envvar="CONVEYOR_APP",
        show_envvar=True,
        metavar="APP",
        help="module.path:attribute of a Conveyor whose store to use.",
    )(fn)


def given_store(ctx: click.Context | None) -> tuple[str | None, str | None] | None:
    """``(app_path, url)`` if ``--app`` or ``--url`` was typed on ``ctx``'s command line."""
    if ctx is None:
        return None
    typed = {
        name: ctx.params.get(name)
        for name in ("app_path", "url")
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    return (typed.get("app_path"), typed.get("url")) if typed else None


def admin_app(app_path: str | None, url: str | None) -> Conveyor:
    """The app an admin command works on.

    ``--app``/``--url`` typed on the command win, then those typed on its
    group (``conveyor queues --url X pause Q``), then ``CONVEYOR_APP``, then
    ``CONVEYOR_URL``, then the embedded default ``Conveyor()``.
    """
    ctx = click.get_current_context()
    given = given_store(ctx) or given_store(ctx.parent)
    if given is not None:
        app_path, url = given
        if app_path and url:
            raise click.UsageError("give --app or --url, not both", ctx)
    if app_path:
        return load_app(app_path)  # from the environment too: the app reads CONVEYOR_URL itself
    return Conveyor(url)


def find_task(app: Conveyor, name: str) -> Task[Any, Any]:
    """The task registered as ``name``, or as ``something.name`` if only one is."""
    if name in app.tasks:
        return app.tasks[name]
    matches = [task for full, task in app.tasks.items() if full.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(sorted(t.name for t in matches))
        raise TaskNotFoundError(f"task name {name!r} is ambiguous; it could be {names}")
    known = ", ".join(sorted(app.tasks)) or "none"
    raise TaskNotFoundError(f"no task named {name!r}; known tasks: {known}")


# -- running and printing ------------------------------------------------------------


def run(app: Conveyor, action: Callable[[Conveyor], Awaitable[T]]) -> T:
    """Open ``app``, run one coroutine against it, close it."""

    async def opened() -> T:
        async with app:
            return await action(app)

    return asyncio.run(opened())


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (and nothing else) on stdout."
    )(fn)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def console() -> Console:
    return Console(highlight=False)


def cell(value: Any) -> Text:
    """A table cell that shows user data literally (no rich markup)."""
    return Text("" if value is None else str(value))


def short_time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def parse_json(raw: str, expected: type, option: str) -> Any:
    """Decode an option's JSON value and check that it is a list or an object."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, expected):
        kind = "list" if expected is list else "object"
        raise CliError(f"{option} must be a JSON {kind}, got {raw!r}")
    return value


# -- the commands ------------------------------------------------------------------


@click.group(cls=ConveyorGroup)
@click.version_option(__version__, prog_name="conveyor")
def cli() -> None:
    """conveyor: durable background jobs, embedded (SQLite) or on Redis."""


@cli.command()
@click.argument("app_path", metavar="APP")
@click.option("--queues", "-q", help="Comma-separated queues (default: those of APP's tasks).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Jobs run at once.")
@click.option("--burst", is_flag=True, help="Exit once no job is ready instead of waiting.")
def worker(app_path: str, queues: str | None, concurrency: int | None, burst: bool) -> None:
    """Run a worker for APP until SIGTERM or SIGINT (or, with --burst, until drained).

    APP is module.path:attribute naming a Conveyor. On a signal the worker
    stops claiming, lets running jobs finish within the shutdown timeout and
    releases the rest, then prints a summary.
    """
    app = load_app(app_path)
    names = app.queue_names() if queues is None else [q.strip() for q in queues.split(",")]
    names = [name for name in names if name]
    if not names:
        raise CliError("no queues to work: register a task on APP or pass --queues a,b")
    stats = run(
        app,
        lambda a: a.work(queues=names, concurrency=concurrency, burst=burst, handle_signals=True),
    )
    click.echo(worker_summary(app, stats))


def worker_summary(app: Conveyor, stats: WorkerStats) -> str:
    return (
        f"worker on {app.settings.masked_url} stopped: {stats.processed} processed"
        f" ({stats.completed} completed, {stats.failed} failed, {stats.retried} retried,"
        f" {stats.cancelled} cancelled), {stats.released} released, {stats.lost} lost"
    )


@cli.command()
@click.argument("app_path", metavar="APP")
@click.argument("task_name", metavar="TASK")
@click.option("--args", "args_json", default="[]", metavar="JSON", help="Arguments, a JSON list.")
@click.option(
    "--kwargs",
    "kwargs_json",
    default="{}",
    metavar="JSON",
    help="Keyword arguments, a JSON object.",
)
@click.option("--job-id", help="Idempotency: if a job has this id, it is returned unchanged.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the job may run.")
@click.option("--priority", type=int, help="-1000..1000, higher first (default: the task's).")
@click.option("--queue", help="Queue to put the job on (default: the task's).")
@json_option
def enqueue(
    app_path: str,
    task_name: str,
    args_json: str,
    kwargs_json: str,
    job_id: str | None,
    delay: float | None,
    priority: int | None,
    queue: str | None,
    as_json: bool,
) -> None:
    """Enqueue a call of TASK (registered on APP) and print the job id.

    TASK is the task's full name or, when unambiguous, its last part:
    "reports.export_report" or "export_report".
    """
    args = parse_json(args_json, list, "--args")
    kwargs = parse_json(kwargs_json, dict, "--kwargs")
    app = load_app(app_path)
    caller = find_task(app, task_name).options(
        job_id=job_id, delay=delay, priority=priority, queue=queue
    )
    job = run(app, lambda _: caller.enqueue(*args, **kwargs))
    if as_json:
        print_json(job.to_dict())
    else:
        click.echo(job.id)


# -- jobs ----------------------------------------------------------------------------


@cli.group()
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
    heading, when = TIME_COLUMNS[JobState(state)]
    table = Table(Column("id", no_wrap=True, min_width=32), "task", "queue", "attempts", heading)
    for job in found:
        row = (job.id, job.task, job.queue, job.attempts, short_time(when(job)))
        table.add_row(*(cell(value) for value in row))
    console().print(table if found else f"no {state} jobs")


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
        except TimeoutError:
            return job, f"job {job_id} is still {job.status.value} after {timeout}s"
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


# -- queues --------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@store_options
@json_option
def queues(as_json: bool, app_path: str | None, url: str | None) -> None:
    """Show each queue's jobs per state and whether it is paused.

    Subcommands pause, resume and clean a queue, set its limits or back it off.
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    overview = run(admin_app(app_path, url), queue_overview)
    if as_json:
        print_json(overview)
        return
    # Flow parents are a column only where there are some (the table fits 80 columns).
    shown = [
        s for s in STATES if s != JobState.WAITING_CHILDREN or any(q["counts"][s] for q in overview)
    ]
    table = Table("queue", *shown, "paused")
    for queue in overview:
        counts = [cell(queue["counts"][state]) for state in shown]
        table.add_row(cell(queue["name"]), *counts, cell("yes" if queue["paused"] else "no"))
    console().print(table if overview else "no queues yet")


async def queue_overview(app: Conveyor) -> list[dict[str, Any]]:
    """Per queue, by name: ``{"name", "paused", "counts": {state: n}}``."""
    counts = await app.jobs.counts()
    paused = {info.name: info.paused for info in await app.jobs.queues()}
    return [
        {
            "name": name,
            "paused": paused.get(name, False),
            "counts": {state.value: counts.get(name, {}).get(state, 0) for state in JobState},
        }
        for name in sorted(counts.keys() | paused.keys())
    ]


@queues.command("pause")
@click.argument("queue")
@store_options
def pause_queue(queue: str, app_path: str | None, url: str | None) -> None:
    """Stop workers from claiming jobs of QUEUE (running jobs finish)."""
    run(admin_app(app_path, url), lambda a: a.jobs.pause(queue))
    click.echo(f"queue {queue} paused")


@queues.command("resume")
@click.argument("queue")
@store_options
def resume_queue(queue: str, app_path: str | None, url: str | None) -> None:
    """Let workers claim jobs of QUEUE again."""
    run(admin_app(app_path, url), lambda a: a.jobs.resume(queue))
    click.echo(f"queue {queue} resumed")


@queues.command("clean")
@click.argument("queue")
@click.option("--state", type=click.Choice(CLEANABLE_STATES), required=True)
@click.option("--older-than", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS")
@click.option("--limit", type=click.IntRange(min=1), default=10_000, show_default=True)
@store_options
def clean_queue(
    queue: str, state: str, older_than: float, limit: int, app_path: str | None, url: str | None
) -> None:
    """Delete the jobs of QUEUE in one state, oldest first.

    Only jobs that finished (or, if unfinished, were created) more than
    --older-than seconds ago, and at most --limit of them.
    """
    removed = run(admin_app(app_path, url), lambda a: a.jobs.clean(queue, state, older_than, limit))
    click.echo(f"removed {removed} {state} jobs from queue {queue}")


# -- events --------------------------------------------------------------------------


@cli.group()
def events() -> None:
    """Follow job events; the event bus's groups and dead letters (events/cli.py)."""


@events.command("tail")
@click.option("--queue", help="Only events of this queue.")
@click.option("--job", "job_id", metavar="ID", help="Only events of this job.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in JobEventKind]))
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many events.")
@store_options
@json_option
def tail_events(
    queue: str | None,
    job_id: str | None,
    kinds: tuple[str, ...],
    count: int | None,
    as_json: bool,
    app_path: str | None,
    url: str | None,
) -> None:
    """Print job events as they happen, until Ctrl-C (or --count events).

    One line per event: time, kind, queue, job id and its data (progress or
    error). With --json, one JSON object per line.
    """

    async def tail(app: Conveyor) -> None:
        subscription = await app.jobs.events(
            job_id=job_id, queue=queue, kinds=list(kinds) or None
        ).start()
        click.echo(f"tailing job events of {app.settings.masked_url} (Ctrl-C stops)", err=True)
        shown = 0
        async for event in subscription:
            print_event(event, as_json)
            shown += 1
            if count is not None and shown >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):
        run(admin_app(app_path, url), tail)


def print_event(event: JobEvent, as_json: bool) -> None:
    data = None if event.data is None else json.loads(event.data)
    when = datetime.fromtimestamp(event.at / 1000, UTC)
    if as_json:
        line = {"at": when.isoformat(), "kind": event.kind.value, "queue": event.queue}
        click.echo(json.dumps({**line, "job_id": event.job_id, "data": data}))
        return
    fields = [short_time(when), f"{event.kind.value:<9}", event.queue, event.job_id]
    if data is not None:
        fields.append(compact_json(data))
    click.echo("  ".join(fields))  # plain text: user data is never read as markup


def _add_subcommands() -> None:
    """Commands defined in other modules, which use the helpers above (so: loaded last)."""
    from conveyor.cli_schedules import schedules

    cli.add_command(schedules)
    importlib.import_module("conveyor.cli_limits")  # adds `limit` and `backoff` to `queues`
    importlib.import_module("conveyor.events.cli")  # adds `groups` and `dlq` to `events`
    cli.add_command(importlib.import_module("conveyor.cli_ratelimit").ratelimit)


_add_subcommands()


def main() -> None:
    """Entry point of the ``conveyor`` script and of ``python -m conveyor``."""
    cli(prog_name="conveyor")
