"""``conveyor queues [pause | resume | clean]``: each queue's counts, and the queue switches.

``limit`` and ``backoff`` (``limits.py``) are registered on this group too.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from conveyor.app import Conveyor
from conveyor.cli.loading import admin_app, run, store_options
from conveyor.cli.output import cell, console, json_option, print_json
from conveyor.jobs.queues import require_known_queue
from conveyor.stores.base import JobState

STATES = [s.value for s in JobState]
CLEANABLE_STATES = [s.value for s in JobState if s is not JobState.ACTIVE]


@click.group(invoke_without_command=True)
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
    """Stop workers from claiming jobs of QUEUE (running jobs finish).

    QUEUE must be known: named by a job, a task of --app, a schedule, a
    running worker or its limits. An empty queue can be paused before use.
    """

    async def pause(app: Conveyor) -> None:
        await require_known_queue(app, queue)
        await app.jobs.pause(queue)

    run(admin_app(app_path, url), pause)
    click.echo(f"queue {queue} paused")


@queues.command("resume")
@click.argument("queue")
@store_options
def resume_queue(queue: str, app_path: str | None, url: str | None) -> None:
    """Let workers claim jobs of QUEUE again (QUEUE must be known, as for pause)."""

    async def resume(app: Conveyor) -> None:
        await require_known_queue(app, queue)
        await app.jobs.resume(queue)

    run(admin_app(app_path, url), resume)
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
