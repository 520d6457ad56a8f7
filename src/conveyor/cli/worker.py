"""``conveyor worker APP``: run a worker until a signal (or, with --burst, until drained).

With ``--processes N`` (or ``auto``) it runs N worker processes under a
supervisor instead (``supervisor.py``), which can also serve their metrics
(``--metrics-port``).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import click

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError
from conveyor.cli.loading import load_app, run
from conveyor.cli.supervisor import (
    Supervisor,
    follow_supervisor,
    metrics_socket,
    process_count,
    serve_metrics,
    tell_supervisor,
)
from conveyor.config import MAX_CONCURRENCY
from conveyor.jobs.worker import WorkerStats
from conveyor.observability.multiprocess import forget_this_process, metrics_directory


@click.command()
@click.argument("app_path", metavar="APP")
@click.option("--queues", "-q", help="Comma-separated queues (default: those of APP's tasks).")
@click.option(
    "--concurrency", "-c", type=click.IntRange(1, MAX_CONCURRENCY), help="Jobs run at once."
)
@click.option("--burst", is_flag=True, help="Exit once no job is ready instead of waiting.")
@click.option(
    "--processes",
    "-p",
    default="1",
    show_default=True,
    callback=process_count,
    metavar="N|auto",
    help="Worker processes, each with --concurrency slots, under one supervisor"
    " (auto: one per core).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve the Prometheus metrics of every worker process on this port (/metrics).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for it.")
@click.option("--supervised", is_flag=True, hidden=True)
def worker(
    app_path: str,
    queues: str | None,
    concurrency: int | None,
    burst: bool,
    processes: int,
    metrics_port: int | None,
    metrics_host: str,
    supervised: bool,
) -> None:
    """Run a worker for APP until SIGTERM or SIGINT (or, with --burst, until drained).

    APP is module.path:attribute naming a Conveyor. On a signal the worker
    stops claiming, lets running jobs finish within the shutdown timeout and
    releases the rest, then prints a summary. With --processes N a supervisor
    runs N worker processes, restarts one that crashes, and drains them all on
    a signal (exit code 0 once every one drained).
    """
    app = load_app(app_path)
    names = app.queue_names() if queues is None else [q.strip() for q in queues.split(",")]
    names = [name for name in names if name]
    if not names:
        raise CliError("no queues to work: register a task on APP or pass --queues a,b")
    if supervised:
        stats = run(app, lambda a: _follow(a, names, concurrency, burst))
        forget_this_process()
        tell_supervisor(worker_summary(app, stats))
        return
    if processes == 1 and metrics_port is None:
        stats = run(
            app,
            lambda a: a.work(
                queues=names, concurrency=concurrency, burst=burst, handle_signals=True
            ),
        )
        click.echo(worker_summary(app, stats))
        return
    run(app, lambda a: a.open())  # a store that cannot be used fails here, once, not N times
    command = [sys.executable, "-m", "conveyor", "worker", app_path, "--supervised"]
    command += ["--queues", ",".join(names)]
    command += ["--concurrency", str(concurrency)] if concurrency else []
    command += ["--burst"] if burst else []
    sock = metrics_socket(metrics_host, metrics_port) if metrics_port is not None else None
    where = f"; metrics on http://{metrics_host}:{sock.getsockname()[1]}/metrics" if sock else ""
    click.echo(
        f"supervisor: {processes} worker processes on {app.settings.masked_url},"
        f" queues {', '.join(names)}{where}"
    )
    with metrics_directory():
        supervisor = Supervisor(command, processes, burst=burst)
        code = asyncio.run(_supervise(app, supervisor, sock))
    sys.exit(code)


async def _follow(
    app: Conveyor, queues: list[str], concurrency: int | None, burst: bool
) -> WorkerStats:
    """A supervised child: a worker that takes its stop from the supervisor."""
    worker = app.worker(queues=queues, concurrency=concurrency, burst=burst)
    restore = follow_supervisor(worker)
    try:
        return await worker.run()
    finally:
        restore()


async def _supervise(app: Conveyor, supervisor: Supervisor, sock: socket.socket | None) -> int:
    if sock is None:
        return await supervisor.run()
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_metrics(app, sock, stop))
    try:
        return await supervisor.run()
    finally:
        stop.set()
        await serving
        await app.close()


def worker_summary(app: Conveyor, stats: WorkerStats) -> str:
    return (
        f"worker on {app.settings.masked_url} stopped: {stats.processed} processed"
        f" ({stats.completed} completed, {stats.failed} failed, {stats.retried} retried,"
        f" {stats.cancelled} cancelled), {stats.released} released, {stats.lost} lost"
    )
