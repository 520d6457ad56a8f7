"""``conveyor enqueue APP TASK``: enqueue one call of a task and print the job id."""

from __future__ import annotations

import click

from conveyor.cli.inputs import parse_json
from conveyor.cli.loading import find_task, load_app, run
from conveyor.cli.output import json_option, print_json
from conveyor.jobs.arguments import validate_call_arguments


@click.command()
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
    "reports.export_report" or "export_report". The arguments must fit the
    task's signature and annotations (an int parameter takes 7, not "7").
    """
    args = parse_json(args_json, list, "--args")
    kwargs = parse_json(kwargs_json, dict, "--kwargs")
    app = load_app(app_path)
    task = find_task(app, task_name)
    validate_call_arguments(task, args, kwargs)
    caller = task.options(job_id=job_id, delay=delay, priority=priority, queue=queue)
    job = run(app, lambda _: caller.enqueue(*args, **kwargs))
    if as_json:
        print_json(job.to_dict())
    else:
        click.echo(job.id)
