"""``conveyor serve APP``: run a service on uvicorn (the service layer is ``conveyor.web``).

APP is ``module.path:attribute`` naming either a Conveyor (served as the
bare service: probes, metrics, docs; ``service.bare_service``) or an ASGI
app made with ``as_service``. In-process workers run unless ``--no-worker``
(the lifespan reads ``CONVEYOR_SERVE_WORKERS``); ``--workers N`` starts N
server processes, which share their metrics through prometheus_client's
multiprocess mode (``observability/multiprocess.py``). FastAPI and uvicorn are imported
only when the command runs, so other commands never load them.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import click

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError
from conveyor.cli.loading import load_app, load_object
from conveyor.observability.multiprocess import metrics_directory

APP_ENV = "CONVEYOR_SERVE_APP"
"""The Conveyor APP of the bare service, for server processes that import it by name."""


@click.command()
@click.argument("app_path", metavar="APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    "processes",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes (each runs its own in-process conveyor worker).",
)
@click.option("--no-worker", is_flag=True, help="Do not run conveyor workers in the server.")
def serve(app_path: str, host: str, port: int, processes: int, no_worker: bool) -> None:
    """Serve APP over HTTP (uvicorn) with health, metrics and in-process workers.

    APP is module.path:attribute naming a Conveyor or an app built with
    conveyor.as_service. SIGTERM/SIGINT: readiness fails at once, in-flight
    requests finish, running jobs get the shutdown timeout, the rest are
    released; the exit code is 0.
    """
    import uvicorn

    target = load_object(app_path)
    if isinstance(target, Conveyor):
        os.environ[APP_ENV] = app_path
        import_name, factory = "conveyor.cli.serve:bare_service_from_env", True
        drain_seconds = target.settings.shutdown_timeout
    else:
        state = getattr(getattr(target, "state", None), "conveyor", None)
        if state is None:
            raise CliError(
                f"{app_path!r} is a {type(target).__name__}: name a conveyor.Conveyor"
                " or an app built with conveyor.as_service"
            )
        import_name, factory = app_path, False
        drain_seconds = state.app.settings.shutdown_timeout
    os.environ["CONVEYOR_SERVE_WORKERS"] = "0" if no_worker else "1"
    with metrics_directory(shared=processes > 1), _exit_zero_on_stop():
        uvicorn.run(
            import_name,
            factory=factory,
            host=host,
            port=port,
            workers=processes,
            access_log=False,  # conveyor's access log masks secrets; uvicorn's prints queries
            # uvicorn would take the client's address from X-Forwarded-For of any loopback
            # peer; conveyor reads it only from the proxies its settings trust
            # (trusted_proxies), so a client cannot pose as another to the rate limits.
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, round(drain_seconds)),
            lifespan="on",
        )


def bare_service_from_env() -> Any:
    """The uvicorn factory of the bare service (each server process builds its own)."""
    from conveyor.web.service import bare_service

    return bare_service(load_app(os.environ[APP_ENV]))


@contextlib.contextmanager
def _exit_zero_on_stop() -> Iterator[None]:
    """uvicorn re-raises the stop signal once it has drained, to the handler it found
    before it started; a quiet one here makes a graceful stop exit 0, not 143."""
    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
