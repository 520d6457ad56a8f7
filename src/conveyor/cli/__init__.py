"""The ``conveyor`` command line: run workers, enqueue jobs, inspect and administer a store.

    conveyor worker APP [--queues a,b] [--concurrency N] [--burst]          worker.py
    conveyor enqueue APP TASK [--args JSON] [--kwargs JSON] [--job-id ID]   enqueue.py
    conveyor jobs list | show ID | wait ID | retry ID | cancel ID | remove  jobs.py
    conveyor queues [pause Q | resume Q | clean Q --state S]                queues.py
    conveyor queues limit Q [--concurrency N] [--rate N/PERIOD] | backoff   limits.py
    conveyor events tail | groups | dlq list | show | replay | purge        events.py
    conveyor schedules list | add APP TASK --cron EXPR | remove NAME       schedules.py
    conveyor serve APP [--host H] [--port P] [--workers N] [--no-worker]  serve.py
    conveyor ratelimit policies | usage POLICY KEY | reset POLICY KEY     ratelimit.py
    conveyor observability rules | grafana                                observability.py

``APP`` is ``module.path:attribute`` naming a :class:`~conveyor.Conveyor`.
Admin commands find their store through ``--app`` or ``--url``
(``CONVEYOR_APP`` / ``CONVEYOR_URL``), else the embedded default
(``loading.py``). Failures print one ``error: ...`` line on stderr and exit
with 1 (``--debug`` shows the traceback instead); usage errors exit with 2
(``errors.py``). Read commands print a rich
table, or with ``--json`` only JSON on stdout (``output.py``).

Each command group is a module that imports only the shared helpers
(``errors``, ``loading``, ``inputs``, ``output``); this module registers them,
one ``add_command`` line each. Nothing outside ``conveyor.cli`` imports it.
"""

from __future__ import annotations

import click

from conveyor import __version__
from conveyor.cli.enqueue import enqueue
from conveyor.cli.errors import ConveyorGroup
from conveyor.cli.events import events
from conveyor.cli.jobs import jobs
from conveyor.cli.limits import backoff_queue, limit_queue
from conveyor.cli.observability import observability
from conveyor.cli.queues import queues
from conveyor.cli.ratelimit import ratelimit
from conveyor.cli.schedules import schedules
from conveyor.cli.serve import serve
from conveyor.cli.worker import worker


@click.group(cls=ConveyorGroup)
@click.version_option(__version__, prog_name="conveyor")
@click.option(
    "--debug",
    is_flag=True,
    envvar="CONVEYOR_DEBUG",
    show_envvar=True,
    help="Show the traceback of a failure instead of one line.",
)
def cli(debug: bool) -> None:
    """conveyor: durable background jobs, embedded (SQLite) or on Redis."""


cli.add_command(worker)
cli.add_command(enqueue)
cli.add_command(jobs)
cli.add_command(queues)
cli.add_command(events)
cli.add_command(schedules)
cli.add_command(serve)
cli.add_command(ratelimit)
cli.add_command(observability)
queues.add_command(limit_queue)
queues.add_command(backoff_queue)


def main() -> None:
    """Entry point of the ``conveyor`` script and of ``python -m conveyor``."""
    cli(prog_name="conveyor")
