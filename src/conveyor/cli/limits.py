"""``conveyor queues limit | backoff``: queue-level controls from the command line.

    conveyor queues limit Q [--concurrency N] [--rate N/PERIOD] [--clear] [--json]
    conveyor queues backoff Q SECONDS

``limit`` with no option shows the queue's limits; with ``--concurrency`` and/or
``--rate`` it replaces them (what is not given is no longer limited);
``--clear`` removes both. PERIOD is seconds, optionally with a unit s, m or h
(``100/1``, ``100/1s``, ``600/1m``, ``600/m``, ``5/0.5s``).

``conveyor/cli/__init__.py`` adds both commands to the ``queues`` group.
"""

from __future__ import annotations

import re
from typing import Any

import click

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError
from conveyor.cli.loading import admin_app, run, store_options
from conveyor.cli.output import json_option, print_json
from conveyor.stores.limits import QueueLimits

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([smh]?)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"100/1s"`` -> ``(100, 1.0)``; ``"600/m"`` -> ``(600, 60.0)``."""
    match = _RATE.match(text)
    if match is None:
        raise CliError(f"--rate must look like 100/1s or 600/m, got {text!r}")
    count, number, unit = match.groups()
    try:
        period = (float(number) if number else 1.0) * _UNITS[unit]
    except ValueError:
        raise CliError(f"--rate must look like 100/1s or 600/m, got {text!r}") from None
    return int(count), period


def limits_dict(limits: QueueLimits) -> dict[str, Any]:
    return {
        "concurrency": limits.concurrency,
        "rate": None if limits.rate is None else f"{limits.rate}/{limits.period_ms / 1000:g}s",
        "tasks": limits.tasks,
        "backoff_until_ms": limits.backoff_until or None,
    }


@click.command("limit")
@click.argument("queue")
@click.option("--concurrency", type=click.IntRange(min=1), help="Jobs running at once, at most.")
@click.option("--rate", metavar="N/PERIOD", help="Jobs started per period, at most (100/1s).")
@click.option("--clear", is_flag=True, help="Remove the concurrency and rate limits.")
@store_options
@json_option
def limit_queue(
    queue: str,
    concurrency: int | None,
    rate: str | None,
    clear: bool,
    as_json: bool,
    app_path: str | None,
    url: str | None,
) -> None:
    """Show or set QUEUE's limits across all workers (global concurrency, rate)."""
    if clear and (concurrency is not None or rate is not None):
        raise CliError("give --clear alone, or --concurrency / --rate")
    change = clear or concurrency is not None or rate is not None
    parsed = None if rate is None else parse_rate(rate)

    async def apply(app: Conveyor) -> QueueLimits:
        if change:
            await app.jobs.set_queue_limits(queue, concurrency=concurrency, rate=parsed)
        return await app.jobs.queue_limits(queue)

    shown = limits_dict(run(admin_app(app_path, url), apply))
    if as_json:
        print_json(shown)
        return
    for name, value in shown.items():
        click.echo(f"{name}: {'-' if value in (None, {}) else value}")


@click.command("backoff")
@click.argument("queue")
@click.argument("seconds", type=click.FloatRange(min=0))
@store_options
def backoff_queue(queue: str, seconds: float, app_path: str | None, url: str | None) -> None:
    """Let no worker start a job of QUEUE for SECONDS (a longer back-off stays)."""
    run(admin_app(app_path, url), lambda a: a.jobs.backoff_queue(queue, seconds))
    click.echo(f"queue {queue} backed off for {seconds:g}s")
