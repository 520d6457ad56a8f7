"""The request deadline: how long a request may take to start its response.

The errors middleware (``problems.py``) gives each request a deadline
(``ServiceOptions.request_timeout``) and answers 504 problem+json when it
passes before the response has started. Once the response starts (a stream,
Server-Sent Events) the deadline is lifted: a long body is the endpoint's
business. A route sets its own limit with :func:`request_timeout`, counted
from the start of the request like the global one.

One sweep per event loop, every ``SWEEP_SECONDS`` while requests are in
flight, cancels the requests past their deadline, instead of one timer per
request: a request then costs a set insert and a removal (an
``asyncio.timeout`` per request costs more than the rest of the errors
layer). A deadline therefore fires up to ``SWEEP_SECONDS`` late.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio.to_thread

from conveyor.errors import ProgrammingError

F = TypeVar("F", bound=Callable[..., Any])
SWEEP_SECONDS = 0.05


class Deadline:
    """One request's deadline (``at``: loop time, None while it has none)."""

    __slots__ = ("at", "fired", "started", "task")

    def __init__(self, task: asyncio.Task[Any], started: float, at: float | None) -> None:
        self.task = task
        self.started = started
        self.at = at
        self.fired = False


class Sweeper:
    """Cancels the requests of one event loop whose deadline has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.deadlines: set[Deadline] = set()
        self.scheduled = False

    def add(self, deadline: Deadline) -> None:
        self.deadlines.add(deadline)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_later(SWEEP_SECONDS, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for deadline in self.deadlines:
            if deadline.at is not None and deadline.at <= now and not deadline.fired:
                deadline.fired = True
                deadline.task.cancel()
        if self.deadlines:
            self.loop.call_later(SWEEP_SECONDS, self.sweep)
        else:
            self.scheduled = False


_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper] = (
    weakref.WeakKeyDictionary()
)
current_deadline: ContextVar[Deadline | None] = ContextVar("conveyor_deadline", default=None)


def sweeper_for(loop: asyncio.AbstractEventLoop) -> Sweeper:
    found = _sweepers.get(loop)
    if found is None:
        found = _sweepers[loop] = Sweeper(loop)
    return found


def extend_deadline(seconds: float) -> None:
    """Give the running request ``seconds`` from its start instead of the global limit."""
    deadline = current_deadline.get()
    if deadline is not None and not deadline.fired:
        deadline.at = deadline.started + seconds


def request_timeout(seconds: float) -> Callable[[F], F]:
    """Set one route's request timeout (seconds from the start of the request).

    >>> @api.get("/reports/{report_id}")
    ... @request_timeout(120)
    ... async def build_report(report_id: int) -> dict[str, str]: ...

    It applies whether or not the service has a global limit. An async
    endpoint is cancelled; a sync one is answered 504 at once while its
    thread runs on to its end (a thread cannot be stopped).
    """
    if not (isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0):
        raise ProgrammingError(f"request_timeout needs seconds > 0, got {seconds!r}")

    def decorate(endpoint: F) -> F:
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                extend_deadline(seconds)
                return await endpoint(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(endpoint)
        async def run_sync(*args: Any, **kwargs: Any) -> Any:
            extend_deadline(seconds)
            call = functools.partial(endpoint, *args, **kwargs)
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

        return run_sync  # type: ignore[return-value]

    return decorate
