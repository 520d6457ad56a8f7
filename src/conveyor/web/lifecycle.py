"""The service's lifespan: start in order, stop in reverse.

Start: settings validated (the app's own settings class, every problem
listed) -> stores open -> the application's own lifespan -> the rate-limit
policies the service names are declared -> in-process workers -> the server
accepts HTTP.

Stop: readiness fails at once (at the first SIGTERM/SIGINT, before the
server has finished its in-flight requests) -> the server stops accepting
and lets in-flight requests finish -> the in-process worker stops claiming,
lets running jobs finish within ``shutdown_timeout`` and releases the
leases of the rest -> the application's lifespan ends -> stores close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import FrameType
from typing import Any

from pydantic import ValidationError

from conveyor.errors import ConfigError
from conveyor.jobs.worker import Worker
from conveyor.observability.logging import get_logger
from conveyor.observability.multiprocess import forget_this_process
from conveyor.web.ratelimit.guarded import undeclared_policies
from conveyor.web.state import ServiceState

log = get_logger("conveyor.web")

WORKERS_ENV = "CONVEYOR_SERVE_WORKERS"
"""Set by ``conveyor serve`` ("1"/"0"): run in-process workers or not, whatever the options say."""

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def service_lifespan(state: ServiceState, inner: Lifespan) -> Lifespan:
    """The lifespan of a service around the application's own (``inner``)."""

    @asynccontextmanager
    async def lifespan(web_app: Any) -> AsyncIterator[Any]:
        settings = build_settings(state.options.settings)
        if settings is not None:
            web_app.state.settings = settings
        await state.app.open()
        muted = _mute_server_access_log(state.options.access_log)
        restore_signals = _drain_on_signal(state.begin_drain)
        try:
            async with inner(web_app) as inner_state:
                # After the app's own startup, which may declare policies too.
                problems = undeclared_policies(web_app, state.rate_limits)
                if problems:
                    raise ConfigError(problems)
                worker, running = _start_worker(state)
                try:
                    yield inner_state
                finally:
                    state.begin_drain()
                    await _stop_worker(worker, running)
        finally:
            state.begin_drain()
            restore_signals()
            _unmute(muted)
            await state.app.close()
            forget_this_process()

    return lifespan


def build_settings(factory: Callable[[], Any] | None) -> Any:
    """The application's settings, or one ConfigError that lists every problem."""
    if factory is None:
        return None
    try:
        return factory()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError(problems) from None


def _wants_workers(state: ServiceState) -> bool:
    forced = os.environ.get(WORKERS_ENV)
    return state.options.run_workers if forced is None else forced == "1"


def _start_worker(state: ServiceState) -> tuple[Worker | None, asyncio.Task[Any] | None]:
    if not _wants_workers(state):
        return None, None
    options = state.options
    queues = list(options.worker_queues or state.app.queue_names())
    if not queues:
        log.info("no in-process worker: the app has no tasks and no worker_queues")
        return None, None
    worker = state.app.worker(queues=queues, concurrency=options.worker_concurrency)
    return worker, asyncio.create_task(worker.run(), name="conveyor-service-worker")


async def _stop_worker(worker: Worker | None, running: asyncio.Task[Any] | None) -> None:
    if worker is None or running is None:
        return
    worker.stop()  # running jobs get shutdown_timeout, then their leases are released
    try:
        await running
    except Exception:
        log.exception("the in-process worker failed")


def _drain_on_signal(begin_drain: Callable[[], None]) -> Callable[[], None]:
    """Chain ``begin_drain`` before the server's own SIGTERM/SIGINT handlers.

    The server handles the signal (stops accepting, finishes in-flight
    requests) and only then ends the lifespan; readiness must fail from the
    signal on. Only Python-level handlers are chained (a server that does not
    watch a signal has none), and only in the main thread, where signals land.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    chained: dict[int, Callable[[int, FrameType | None], Any]] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if not callable(handler):
            continue

        def on_signal(
            signum: int,
            frame: FrameType | None,
            server_handler: Callable[[int, FrameType | None], Any] = handler,
        ) -> None:
            begin_drain()
            server_handler(signum, frame)

        signal.signal(sig, on_signal)
        chained[sig] = handler

    def restore() -> None:
        for sig, handler in chained.items():
            signal.signal(sig, handler)

    return restore


def _mute_server_access_log(ours: bool) -> logging.Logger | None:
    """uvicorn's access log prints raw paths and query strings (tokens included);
    with ours on, it is off."""
    logger = logging.getLogger("uvicorn.access")
    if not ours or logger.disabled:
        return None
    logger.disabled = True
    return logger


def _unmute(logger: logging.Logger | None) -> None:
    if logger is not None:
        logger.disabled = False
