"""``conveyor worker APP --processes N``: N worker processes under one supervisor.

One event loop runs in one process, so a worker uses one core. The supervisor
starts N children, each ``python -m conveyor worker APP --supervised ...``
(a worker like any other, on the same store) and keeps them running:

- A child that crashes (a signal, an exit code other than 0) is started again
  after a back-off (0.5 s doubling to 30 s; reset once a child has run 30 s).
  Nothing of its work is lost: the jobs it held run again once their lease
  ends, like those of any killed worker. In ``--burst`` mode a child that
  drained its queues (exit 0) is not started again.
- SIGTERM or SIGINT to the supervisor drains every child: each gets SIGTERM,
  stops claiming, gives back the jobs it claimed ahead, lets running jobs
  finish within ``shutdown_timeout`` and releases the rest. A second signal
  sends SIGINT: stop now (cancel and release). The supervisor exits 0 when every
  child drained (exited 0), else 1.
- Children run in their own session, so a terminal's Ctrl-C reaches the
  supervisor alone (which then drains them once), and a signal sent to a child
  directly is a drain too, never a second "stop now". A child whose supervisor
  died (its stdin pipe closes) drains and exits by itself.
- A status line per child on stdout: started, exited (how), restarted; the
  child's own summary line, prefixed with its number.
- Metrics: prometheus_client's multiprocess mode, as ``conveyor serve
  --workers N`` (``observability/multiprocess.py``), so counters and histograms
  sum over the children and keep what a crashed child counted; with
  ``--metrics-port`` the supervisor serves them on ``/metrics``, the store's
  gauges read by the supervisor itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from conveyor.cli.errors import CliError

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.jobs.worker import Worker

RESTART_FIRST = 0.5
RESTART_MAX = 30.0
STABLE_AFTER = 30.0
"""A child that ran this long before it crashed is restarted after the first back-off."""


def process_count(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """``--processes``: a positive integer, or ``auto`` (this machine's usable cores)."""
    if value.strip().lower() == "auto":
        return usable_cores()
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a positive integer nor 'auto'") from None
    if count < 1:
        raise click.BadParameter(f"{count} is not a positive integer")
    return count


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform knows it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass
class Child:
    """One worker process slot: its current process and what became of the earlier ones."""

    number: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    crashes_in_a_row: int = 0
    exit_code: int | None = None


class Supervisor:
    """Runs ``command`` (a ``conveyor worker ... --supervised`` line) in ``processes``
    children until stopped (or, with ``burst``, until every child drained)."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        burst: bool,
        echo: Callable[[str], None] = click.echo,
    ) -> None:
        self.command = list(command)
        self.children = [Child(n + 1) for n in range(processes)]
        self.burst = burst
        self.echo = echo
        self._stop = asyncio.Event()
        self._stops = 0

    async def run(self) -> int:
        """Start and keep the children; 0 when every one of them ended with exit code 0."""
        restore = self._handle_signals()
        try:
            await asyncio.gather(*(self._keep(child) for child in self.children))
        finally:
            restore()
        failed = [c for c in self.children if c.exit_code != 0]
        return 1 if failed else 0

    def stop(self) -> None:
        """Drain every child (SIGTERM); a second call stops them now (SIGINT)."""
        self._stops += 1
        self._stop.set()
        now = self._stops > 1
        how = "stopping now (SIGINT)" if now else "draining (SIGTERM)"
        self.echo(f"supervisor: {how} {len(self._live())} worker processes")
        for child in self._live():
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGINT if now else signal.SIGTERM)

    def _live(self) -> list[Child]:
        return [c for c in self.children if c.process is not None and c.process.returncode is None]

    def _handle_signals(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        stops = (signal.SIGTERM, signal.SIGINT)
        for sig in stops:
            loop.add_signal_handler(sig, self.stop)

        def restore() -> None:
            for sig in stops:
                loop.remove_signal_handler(sig)

        return restore

    async def _keep(self, child: Child) -> None:
        """Run ``child`` until the supervisor stops (or it drained, in burst mode)."""
        while not self._stop.is_set():
            started = time.monotonic()
            code = await self._run_once(child)
            child.exit_code = code
            how = _how_it_ended(code)
            if self._stop.is_set() or (self.burst and code == 0):
                self.echo(f"process {self._name(child)}: {how}")
                return
            if time.monotonic() - started >= STABLE_AFTER:
                child.crashes_in_a_row = 0
            child.crashes_in_a_row += 1
            delay = min(RESTART_MAX, RESTART_FIRST * 2 ** (child.crashes_in_a_row - 1))
            child.restarts += 1
            self.echo(
                f"process {self._name(child)}: {how}; restarting in {delay:g} s"
                f" (restart {child.restarts})"
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _run_once(self, child: Child) -> int:
        env = {**os.environ, "CONVEYOR_WORKER_PROCESS": self._name(child)}
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,  # closes if the supervisor dies: the child drains
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        child.process = process
        self.echo(f"process {self._name(child)}: started")
        if self._stop.is_set():  # a stop that came while it was starting
            process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        async for line in process.stdout:
            self.echo(f"process {self._name(child)}: {line.decode(errors='replace').rstrip()}")
        return await process.wait()

    def _name(self, child: Child) -> str:
        pid = f" (pid {child.process.pid})" if child.process is not None else ""
        return f"{child.number}/{len(self.children)}{pid}"


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return "exited 0 (drained)" if code == 0 else f"exited with code {code}"


# -- the child's side --------------------------------------------------------------------


def follow_supervisor(worker: Worker) -> Callable[[], None]:
    """In a supervised child: SIGTERM drains (however often it comes), SIGINT stops now,
    and the supervisor's death (stdin closes) drains. Returns what undoes it."""
    loop = asyncio.get_running_loop()

    def drain() -> None:
        if not worker.stopping:
            worker.stop()

    def stop_now() -> None:
        drain()
        worker.stop()  # the second call cancels and releases what still runs

    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 4096):  # EOF: the supervisor is gone
            loop.remove_reader(stdin)
            drain()

    loop.add_signal_handler(signal.SIGTERM, drain)
    loop.add_signal_handler(signal.SIGINT, stop_now)
    loop.add_reader(stdin, on_stdin)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_reader(stdin)

    return restore


def tell_supervisor(line: str) -> None:
    """Print a line on stdout, the supervisor's pipe; if the supervisor is gone, drop it
    (and what Python would flush at exit) instead of failing the drained worker."""
    try:
        click.echo(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# -- metrics -------------------------------------------------------------------------------


def metrics_socket(host: str, port: int) -> socket.socket:
    """The listening socket of ``--metrics-port`` (bound now, so a taken port fails at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def serve_metrics(app: Conveyor, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve ``/metrics`` of every process (and ``/livez``) on ``sock`` until ``stop`` is set."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from conveyor.observability.metrics import CONTENT_TYPE
    from conveyor.web.metrics import exposition

    async def metrics(request: Request) -> Response:
        return Response(await exposition(app), media_type=CONTENT_TYPE)

    async def livez(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    class QuietServer(uvicorn.Server):
        """A uvicorn server that leaves signals to the supervisor."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    web = Starlette(routes=[Route("/metrics", metrics), Route("/livez", livez)])
    config = uvicorn.Config(web, lifespan="off", access_log=False, log_config=None)
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await stop.wait()
    server.should_exit = True
    await serving
