"""``conveyor events ...``: job events as they happen, the event bus's groups and dead letters.

conveyor events tail [--queue Q] [--job ID] [--kind K] [--count N]
conveyor events groups
conveyor events dlq list [--group G] | show ID | replay ID | replay --all | purge
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import click
import msgspec
from rich.table import Table
from rich.text import Text

from conveyor.app import Conveyor
from conveyor.cli.loading import admin_app, run, store_options
from conveyor.cli.output import (
    cell,
    compact_json,
    console,
    json_option,
    print_json,
    short_time,
)
from conveyor.events.deadletters import DeadLetter
from conveyor.events.envelope import group_queue
from conveyor.stores.base import JobEvent, JobEventKind, JobState


@click.group()
def events() -> None:
    """Follow job events; the event bus's groups and dead letters."""


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


@events.command("groups")
@store_options
@json_option
def list_groups(as_json: bool, app_path: str | None, url: str | None) -> None:
    """Each subscriber group: its event types, backlog and dead letters."""
    overview = run(admin_app(app_path, url), group_overview)
    if as_json:
        print_json(overview)
        return
    table = Table("group", "event types", "backlog", "dead letters")
    for group in overview:
        row = (group["group"], ", ".join(group["types"]), group["backlog"], group["dead_letters"])
        table.add_row(*(cell(value) for value in row))
    console().print(table if overview else "no subscriber groups yet")


async def group_overview(app: Conveyor) -> list[dict[str, Any]]:
    groups = await app.events.groups()
    counts = await app.jobs.counts()
    known = set(groups) | set(await app.events.dead_letters.groups())
    overview = []
    for group in sorted(known):
        by_state = counts.get(group_queue(group), {})
        backlog = sum(
            by_state.get(s, 0) for s in (JobState.WAITING, JobState.SCHEDULED, JobState.ACTIVE)
        )
        overview.append(
            {
                "group": group,
                "types": groups.get(group, []),
                "backlog": backlog,
                "dead_letters": by_state.get(JobState.FAILED, 0),
            }
        )
    return overview


@events.group()
def dlq() -> None:
    """Dead letters: deliveries that failed their last attempt."""


def letter_dict(letter: DeadLetter) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(letter)
    return data


@dlq.command("list")
@click.option("--group", help="Only this group's dead letters.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@store_options
@json_option
def list_letters(
    group: str | None,
    limit: int,
    offset: int,
    as_json: bool,
    app_path: str | None,
    url: str | None,
) -> None:
    """List dead letters, newest first."""
    found = run(
        admin_app(app_path, url),
        lambda a: a.events.dead_letters.list(group, offset=offset, limit=limit),
    )
    if as_json:
        print_json([letter_dict(letter) for letter in found])
        return
    table = Table("id", "group", "type", "attempts", "failed", "error")
    for letter in found:
        error = f"{letter.error.type}: {letter.error.message}" if letter.error else ""
        row = (
            letter.id,
            letter.group,
            letter.meta.type,
            letter.attempts,
            short_time(letter.failed_at),
            error,
        )
        table.add_row(*(cell(value) for value in row))
    console().print(table if found else "no dead letters")


@dlq.command("show")
@click.argument("letter_id", metavar="ID")
@store_options
@json_option
def show_letter(letter_id: str, as_json: bool, app_path: str | None, url: str | None) -> None:
    """Show one dead letter: the event, its metadata, the error and its traceback."""
    letter = run(admin_app(app_path, url), lambda a: a.events.dead_letters.get(letter_id))
    data = letter_dict(letter)
    if as_json:
        print_json(data)
        return
    out = console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key in ("id", "group", "attempts", "failed_at"):
        grid.add_row(key, cell(data[key]))
    for event in data["events"]:
        for key, value in event["meta"].items():
            if key not in ("attempt", "group"):
                grid.add_row(key, cell(value))
        grid.add_row("data", cell(compact_json(event["data"])))
    if letter.error is not None:
        grid.add_row("error", cell(f"{letter.error.type}: {letter.error.message}"))
    out.print(grid)
    if letter.error is not None and letter.error.traceback:
        out.print("\ntraceback:", style="bold")
        out.print(Text(letter.error.traceback.rstrip()))


@dlq.command("replay")
@click.argument("letter_id", metavar="ID", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter (of --group).")
@click.option("--group", help="With --all: only this group's dead letters.")
@store_options
def replay_letters(
    letter_id: str | None,
    replay_all: bool,
    group: str | None,
    app_path: str | None,
    url: str | None,
) -> None:
    """Send a dead letter (or all of them) back to its group, attempts reset."""
    if (letter_id is None) == (not replay_all):
        raise click.UsageError("give a dead letter ID or --all, not both")
    if group is not None and not replay_all:
        raise click.UsageError("--group goes with --all")
    app = admin_app(app_path, url)
    if letter_id is not None:
        run(app, lambda a: a.events.dead_letters.replay(letter_id))
        click.echo(f"dead letter {letter_id} replayed")
        return
    count = run(app, lambda a: a.events.dead_letters.replay_all(group))
    click.echo(f"replayed {count} dead letters")


@dlq.command("purge")
@click.option("--group", help="Only this group's dead letters.")
@click.option("--older-than", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@store_options
def purge_letters(
    group: str | None, older_than: float, yes: bool, app_path: str | None, url: str | None
) -> None:
    """Delete dead letters for good (older than --older-than seconds)."""
    scope = f"group {group}" if group else "every group"
    if not yes:
        click.confirm(f"delete the dead letters of {scope}?", abort=True)
    count = run(admin_app(app_path, url), lambda a: a.events.dead_letters.purge(group, older_than))
    click.echo(f"purged {count} dead letters of {scope}")
