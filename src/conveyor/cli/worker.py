"""``conveyor worker APP``: run a worker until a signal (or, with --burst, until drained)."""

from __future__ import annotations

import click

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError
from conveyor.cli.loading import load_app, run
from conveyor.config import MAX_CONCURRENCY
from conveyor.jobs.worker import WorkerStats


@click.command()
@click.argument("app_path", metavar="APP")
@click.option("--queues", "-q", help="Comma-separated queues (default: those of APP's tasks).")
@click.option(
    "--concurrency", "-c", type=click.IntRange(1, MAX_CONCURRENCY), help="Jobs run at once."
)
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
