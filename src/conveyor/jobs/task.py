"""Tasks: registered functions that can be enqueued as jobs.

``Task[P, R]`` carries the function's parameters ``P`` and result ``R``, so
``await export_report.enqueue(7, fmt="xlsx")`` is checked by mypy against
``export_report``'s signature, and ``await job.wait()`` is typed ``R``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from conveyor.errors import InvalidArgumentsError
from conveyor.jobs.job import Job
from conveyor.jobs.options import Call, EnqueueOptions, Step
from conveyor.jobs.retry import Backoff, BackoffLike, Retention, as_backoff
from conveyor.jobs.search import check_paths

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime
    from conveyor.jobs.sync_job import SyncJob

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_NO_OPTIONS = EnqueueOptions()


class _Caller(Generic[P, R]):
    """Enqueues calls of one task with fixed per-call options."""

    __slots__ = ("_options", "_task")

    def __init__(self, task: Task[P, R], options: EnqueueOptions) -> None:
        self._task = task
        self._options = options

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        """A call to enqueue later with ``app.enqueue_many([...])``."""
        return Call(self._task, args, kwargs, self._options)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Enqueue one job. Returns the existing job if ``job_id`` is taken."""
        (job,) = await self._task.app.jobs.enqueue([Call(self._task, args, kwargs, self._options)])
        return job

    def step(
        self: _Caller[Concatenate[Any, P2], R], *args: P2.args, **kwargs: P2.kwargs
    ) -> Step[R]:
        """A call for a flow, whose first argument the flow fills in.

        >>> await app.flows.chain(fetch.call(url), parse.step(), store.step(table="pages"))

        In a chain the first argument is the previous step's result; as a
        group's ``then``, the list of the group's results.
        """
        return Step(self._task, args, kwargs, self._options)

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> SyncJob[R]:
        """``enqueue`` for sync code (Django, Flask, scripts)."""
        (job,) = self._task.app.sync.enqueue_many([Call(self._task, args, kwargs, self._options)])
        return job


class Task(_Caller[P, R]):
    """A function registered with ``@app.task``; see :meth:`Conveyor.task`."""

    __slots__ = (
        "app",
        "backoff",
        "concurrency",
        "fn",
        "is_async",
        "max_stalled",
        "name",
        "non_retryable",
        "on_outcome",
        "priority",
        "queue",
        "retention",
        "retries",
        "sandbox",
        "search",
        "signature",
        "timeout",
    )

    def __init__(
        self,
        app: Runtime,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str,
        queue: str,
        retries: int,
        backoff: BackoffLike,
        timeout: float | None,
        priority: int,
        retention: Retention | None,
        max_stalled: int,
        non_retryable: tuple[type[BaseException], ...],
        sandbox: bool = False,
        concurrency: int | None = None,
        search: Iterable[str] = (),
    ) -> None:
        super().__init__(self, _NO_OPTIONS)
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.retries = retries
        self.backoff: Backoff = as_backoff(backoff)
        self.timeout = timeout
        self.priority = priority
        self.retention = retention
        self.max_stalled = max_stalled
        self.non_retryable = non_retryable
        self.on_outcome: Callable[[str, float], None] | None = None
        """Called by the worker with each recorded outcome kind and its run time (seconds)."""
        self.sandbox = sandbox
        """Each attempt runs in a child process (``conveyor.jobs.sandbox``)."""
        self.concurrency = concurrency
        """At most this many jobs of the task run at once, across all workers (None: no limit)."""
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.search = check_paths(self.signature, search, name)
        """Payload paths indexed for ``app.jobs.search(field=...)`` (``jobs/search.py``)."""

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def options(
        self,
        *,
        job_id: str | None = None,
        delay: float | None = None,
        at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        debounce: tuple[str, float] | None = None,
        throttle: tuple[str, float] | None = None,
    ) -> _Caller[P, R]:
        """Per-call options: ``await task.options(delay=60, job_id="x").enqueue(...)``.

        ``job_id`` makes enqueue idempotent: a second enqueue with the same id
        returns the existing job and writes nothing. ``debounce=(key, seconds)``
        runs the job ``seconds`` after the last enqueue with ``key`` (each one
        replaces the pending job's arguments); ``throttle=(key, seconds)`` lets
        one job per ``key`` in per ``seconds`` and returns it to the others.
        """
        opts = EnqueueOptions(
            job_id, delay, at, priority, queue, retries, timeout, debounce, throttle
        )
        return _Caller(self, opts)

    async def enqueue_many(self, calls: Iterable[Call[R]]) -> list[Job[R]]:
        """Enqueue many calls (from ``task.call(...)``) in one store step."""
        return await self.app.jobs.enqueue(list(calls))

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentsError(f"task {self.name}: {exc}") from None


def default_task_name(fn: Callable[..., Any]) -> str:
    """``module.qualname``, the name a worker that imports the module gives the function.

    A script run as ``python path/to/tasks.py`` or ``python -m pkg.tasks``
    is the module ``__main__`` in its own process; its functions get the name
    of the module a worker imports (``tasks``, ``pkg.tasks``), so a job
    enqueued by the script finds its task in ``conveyor worker tasks:app``.
    """
    return f"{_module_name(fn)}.{fn.__qualname__}"


def _module_name(fn: Callable[..., Any]) -> str:
    module: str = fn.__module__
    main = sys.modules.get("__main__")
    if module != "__main__" or main is None:
        return module
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # python -m pkg.tasks
        return str(spec.name)
    file = getattr(main, "__file__", None)
    if not file:  # python -c, a REPL: nothing else imports it
        return module
    path = Path(file).resolve()
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():  # a module inside packages: pkg.sub.tasks
        parts.insert(0, directory.name)
        directory = directory.parent
    return ".".join(parts) if all(part.isidentifier() for part in parts) else module


class TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...
