"""``conveyor schedules list | add | remove``: schedules from the command line.

    conveyor schedules list [--app APP | --url URL] [--json]
    conveyor schedules add APP TASK (--cron EXPR [--tz ZONE] | --every SECONDS)
                           [--name NAME] [--args JSON] [--kwargs JSON] [--queue Q]
                           [--priority N] [--missed skip|run_once] [--grace SECONDS]
    conveyor schedules remove NAME [--app APP | --url URL]

``add`` needs APP to check the arguments against TASK's signature; ``list``
and ``remove`` find their store like the other admin commands.

"""

from __future__ import annotations

import click
from rich.table import Column, Table

from conveyor.cli.inputs import parse_json
from conveyor.cli.loading import admin_app, find_task, load_app, run, store_options
from conveyor.cli.output import cell, console, json_option, print_json, short_time
from conveyor.jobs.arguments import validate_call_arguments
from conveyor.jobs.schedule import MISSED_POLICIES, Missed, Schedule


@click.group()
def schedules() -> None:
    """List, add and remove schedules (cron and interval)."""


def timing(schedule: Schedule) -> str:
    if schedule.every is not None:
        return f"every {schedule.every:g}s"
    return f"{schedule.cron} ({schedule.tz})"


@schedules.command("list")
@store_options
@json_option
def list_schedules(as_json: bool, app_path: str | None, url: str | None) -> None:
    """List every schedule, by name, with its next and last fire times."""
    found = run(admin_app(app_path, url), lambda a: a.schedules.list())
    if as_json:
        print_json([s.to_dict() for s in found])
        return
    table = Table(
        Column("name", no_wrap=True),
        "task",
        "queue",
        Column("when", no_wrap=True),
        "missed",
        "next fire",
        "last fire",
    )
    for s in found:
        row = (s.name, s.task, s.queue, timing(s), s.missed)
        table.add_row(*(cell(v) for v in row), short_time(s.next_fire), short_time(s.last_fire))
    console().print(table if found else "no schedules")


@schedules.command("add")
@click.argument("app_path", metavar="APP")
@click.argument("task_name", metavar="TASK")
@click.option("--cron", metavar="EXPR", help='A cron expression, e.g. "*/5 * * * *".')
@click.option("--tz", metavar="ZONE", help="Time zone of --cron, e.g. Europe/Paris (default UTC).")
@click.option(
    "--every",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="An interval instead of --cron (ticks aligned on the Unix epoch).",
)
@click.option("--name", help="The schedule's name (default: the task's); replaces one so named.")
@click.option("--args", "args_json", default="[]", metavar="JSON", help="Arguments, a JSON list.")
@click.option(
    "--kwargs", "kwargs_json", default="{}", metavar="JSON", help="Keyword arguments, an object."
)
@click.option("--queue", help="Queue of the jobs (default: the task's).")
@click.option("--priority", type=int, help="-1000..1000, higher first (default: the task's).")
@click.option(
    "--missed",
    type=click.Choice(MISSED_POLICIES),
    default="skip",
    show_default=True,
    help="Ticks missed by more than --grace: skip them, or run one job for them.",
)
@click.option(
    "--grace",
    type=click.FloatRange(0, 86_400),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How late a tick may fire before it counts as missed.",
)
@json_option
def add_schedule(
    app_path: str,
    task_name: str,
    cron: str | None,
    tz: str | None,
    every: float | None,
    name: str | None,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
    priority: int | None,
    missed: Missed,
    grace: float,
    as_json: bool,
) -> None:
    """Add (or replace) a schedule that enqueues TASK of APP on every tick."""
    args = parse_json(args_json, list, "--args")
    kwargs = parse_json(kwargs_json, dict, "--kwargs")
    app = load_app(app_path)
    task = find_task(app, task_name)
    validate_call_arguments(task, args, kwargs)
    call = task.options(queue=queue, priority=priority).call(*args, **kwargs)
    added = run(
        app,
        lambda a: a.schedules.add(
            call, cron=cron, every=every, tz=tz, name=name, missed=missed, grace=grace
        ),
    )
    if as_json:
        print_json(added.to_dict())
    else:
        click.echo(
            f"schedule {added.name} ({timing(added)}) next fires at {short_time(added.next_fire)}"
        )


@schedules.command("remove")
@click.argument("name")
@store_options
def remove_schedule(name: str, app_path: str | None, url: str | None) -> None:
    """Delete schedule NAME (jobs it already enqueued stay)."""
    run(admin_app(app_path, url), lambda a: a.schedules.remove(name))
    click.echo(f"schedule {name} removed")
