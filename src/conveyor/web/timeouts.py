"""The request deadline: how long a request may take to start its response.

The errors middleware (``problems.py``) opens a deadline for each request
(``ServiceOptions.request_timeout``) and answers 504 problem+json when it
passes before the response has started. Once the response starts (a stream,
Server-Sent Events) the deadline is lifted: a long body is the endpoint's
business. A route sets its own limit with :func:`request_timeout`, counted
from the start of the request like the global one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from conveyor.errors import ProgrammingError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class Deadline:
    """The running request's deadline."""

    started: float
    """``loop.time()`` when the request began."""
    timeout: asyncio.Timeout


current_deadline: ContextVar[Deadline | None] = ContextVar("conveyor_deadline", default=None)


def extend_deadline(seconds: float) -> None:
    """Give the running request ``seconds`` from its start instead of the global limit."""
    deadline = current_deadline.get()
    if deadline is not None and not deadline.timeout.expired():
        deadline.timeout.reschedule(deadline.started + seconds)


def request_timeout(seconds: float) -> Callable[[F], F]:
    """Set one route's request timeout (seconds from the start of the request).

    >>> @api.get("/reports/{report_id}")
    ... @request_timeout(120)
    ... async def build_report(report_id: int) -> dict[str, str]: ...

    It applies whether or not the service has a global limit. A sync
    endpoint keeps running in its thread after a 504 (a thread cannot be
    stopped); an async one is cancelled.
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
            return await run_in_threadpool(endpoint, *args, **kwargs)

        return run_sync  # type: ignore[return-value]

    return decorate
