"""``Conveyor``: settings, stores, the task registry and the lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.config import Settings, load_settings
from conveyor.errors import BadInputError, ProgrammingError
from conveyor.jobs.client import JobClient
from conveyor.jobs.flows import FlowClient
from conveyor.jobs.job import Job
from conveyor.jobs.limits import check_concurrency
from conveyor.jobs.options import Call
from conveyor.jobs.retention import RetentionRules
from conveyor.jobs.retry import Backoff, BackoffLike, Retention
from conveyor.jobs.sandbox import check_importable
from conveyor.jobs.schedule import Missed, ScheduleClient
from conveyor.jobs.task import Task, TaskDecorator, default_task_name
from conveyor.jobs.worker import Worker, WorkerStats
from conveyor.observability.audit import AuditClient
from conveyor.observability.health import CheckResult, Health, Status
from conveyor.observability.history import HistoryClient
from conveyor.observability.logging import configure_logging
from conveyor.observability.metrics import Metrics
from conveyor.ratelimit.service import settings_problems as rate_limit_problems
from conveyor.stores.base import JobStore
from conveyor.stores.registry import make_backend

if TYPE_CHECKING:
    from conveyor.cache.cache import Cache
    from conveyor.events.bus import EventBus
    from conveyor.ratelimit.service import RateLimits
    from conveyor.stores.backend import Backend
    from conveyor.sync import SyncClient

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"


class Conveyor:
    """The application: one store, its tasks, workers, metrics and health.

    >>> app = Conveyor()                      # embedded SQLite in ./.conveyor
    >>> app = Conveyor("memory://")           # tests
    >>> @app.task(retries=3, timeout=30)
    ... async def export_report(user_id: int, fmt: str = "csv") -> str: ...
    >>> async with app:
    ...     job = await export_report.enqueue(7, fmt="xlsx")
    """

    def __init__(
        self, url: str | None = None, *, clock: Clock | None = None, **settings: Any
    ) -> None:
        self.settings: Settings = load_settings(url, settings, [rate_limit_problems])
        self.clock: Clock = SYSTEM_CLOCK if clock is None else clock
        """Where this app reads the time (tests pass a ``ManualClock``)."""
        self.backend: Backend = make_backend(self.settings.store_url, self.settings, self.clock)
        """Every store of this app, on the backend its URL names (``stores/registry.py``)."""
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.retention = RetentionRules(self.settings, self.tasks)
        self.jobs = JobClient(self.settings, self.backend, self.open, self.retention)
        self.schedules = ScheduleClient(self)
        self.flows = FlowClient(self)
        """Flows: ``app.flows.add(...)``, ``chain(...)``, ``group(...)`` (jobs/flows.py)."""
        self.metrics = Metrics()
        self.history = HistoryClient(self.backend.history, self.clock, self.settings, self.open)
        """Minute-by-minute counts in the store, for charts (``observability/history.py``)."""
        self.history.add_source(self.metrics.jobs.history_totals)
        self.audit = AuditClient(self.backend.audit, self.clock, self.settings, self.open)
        """The log of destructive actions (``observability/audit.py``)."""
        self.health = Health()
        self.workers: list[Worker] = []
        """Workers running in this process (a worker adds itself while it runs)."""
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._sync: SyncClient | None = None
        self._events: EventBus | None = None
        self._cache: Cache | None = None
        self._rate_limits: RateLimits | None = None
        self.health.add_check("store", self._check_store)
        self.health.add_check("workers", self._check_workers, critical=False)
        self.health.add_check("cache", self._check_cache, critical=False)
        self.health.add_check("rate_limits", self._check_rate_limits, critical=False)

    def __repr__(self) -> str:
        return f"<Conveyor {self.settings.masked_url} tasks={len(self.tasks)}>"

    @property
    def store(self) -> JobStore:
        """The job store of this app's backend."""
        return self.backend.jobs

    # -- tasks -----------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        retries: int = 0,
        backoff: BackoffLike | None = None,
        timeout: float | None = None,
        priority: int = 0,
        retention: Retention | None = None,
        max_stalled: int | None = None,
        non_retryable: Iterable[type[BaseException]] = (),
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str | None = None,
        missed: Missed = "skip",
        sandbox: bool = False,
        concurrency: int | None = None,
        search: Sequence[str] = (),
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        retries: int = 0,
        backoff: BackoffLike | None = None,
        timeout: float | None = None,
        priority: int = 0,
        retention: Retention | None = None,
        max_stalled: int | None = None,
        non_retryable: Iterable[type[BaseException]] = (),
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str | None = None,
        missed: Missed = "skip",
        sandbox: bool = False,
        concurrency: int | None = None,
        search: Sequence[str] = (),
    ) -> Any:
        """Register a function (async or sync) as a task.

        ``retries``: attempts after the first; ``backoff``: seconds, a
        :class:`Backoff` or ``f(attempt) -> seconds`` (default exponential
        with jitter); ``timeout``: seconds per attempt; ``priority``: -1000..1000,
        higher first; ``non_retryable``: exception classes that fail at once;
        ``sandbox``: run each attempt in a child process, killed at ``timeout``
        (for CPU-bound or untrusted code; the function must be importable by
        module path); ``concurrency``: at most this many jobs of the task run
        at once across all workers (in its queue); ``search``: payload fields to
        index for ``app.jobs.search(field=(name, value))``, each a parameter name
        or a dotted path into one (``"order.id"``). ``cron`` (in time zone
        ``tz``) or ``every`` (seconds) schedules the task, which then takes
        no arguments; ``missed`` is the missed-ticks policy (see :meth:`ScheduleClient.add
        <conveyor.jobs.schedule.ScheduleClient.add>`). The task is named
        ``module.function`` unless ``name`` is given; in a script run as
        ``python tasks.py`` the module is ``tasks``, as in a worker that imports it.
        """
        options: dict[str, Any] = {
            "name": name,
            "queue": queue,
            "retries": retries,
            "backoff": backoff,
            "timeout": timeout,
            "priority": priority,
            "retention": retention,
            "max_stalled": max_stalled,
            "non_retryable": non_retryable,
            "cron": cron,
            "every": every,
            "tz": tz,
            "missed": missed,
            "sandbox": sandbox,
            "concurrency": concurrency,
            "search": search,
        }
        if fn is not None:
            return self.register_task(fn, **options)
        return lambda f: self.register_task(f, **options)

    def register_task(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        retries: int = 0,
        backoff: BackoffLike | None = None,
        timeout: float | None = None,
        priority: int = 0,
        retention: Retention | None = None,
        max_stalled: int | None = None,
        non_retryable: Iterable[type[BaseException]] = (),
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str | None = None,
        missed: Missed = "skip",
        sandbox: bool = False,
        concurrency: int | None = None,
        search: Sequence[str] = (),
    ) -> Task[Any, Any]:
        """Register ``fn`` as a task: :meth:`task` without the decorator (same options)."""
        task_name = name or default_task_name(fn)
        if task_name in self.tasks:
            raise ProgrammingError(f"a task named {task_name!r} is already registered")
        if retries < 0:
            raise ProgrammingError("retries must be >= 0")
        if timeout is not None and timeout <= 0:
            raise ProgrammingError("timeout must be > 0 seconds")
        if sandbox:
            check_importable(fn)
        try:
            check_concurrency(concurrency)
        except BadInputError as exc:
            raise ProgrammingError(f"task {task_name}: {exc}") from None
        task = Task(
            self,
            fn,
            name=task_name,
            queue=queue,
            retries=retries,
            backoff=Backoff.exponential() if backoff is None else backoff,
            timeout=timeout,
            priority=priority,
            retention=retention,
            max_stalled=self.settings.max_stalled if max_stalled is None else max_stalled,
            non_retryable=tuple(non_retryable),
            sandbox=sandbox,
            concurrency=concurrency,
            search=search,
        )
        if cron is not None or every is not None or tz is not None:
            self.schedules.declare(task, cron=cron, every=every, tz=tz, missed=missed)
        self.tasks[task_name] = task
        return task

    def queue_names(self) -> list[str]:
        """The queues of the registered tasks, in registration order."""
        return list(dict.fromkeys(t.queue for t in self.tasks.values()))

    def set_retention(self, queue: str, retention: Retention) -> None:
        """Retention for the jobs of ``queue`` whose task sets none."""
        self.jobs.set_retention(queue, retention)

    async def enqueue_many(self, calls: Iterable[Call[Any]]) -> list[Job[Any]]:
        """Enqueue calls of any tasks (``task.call(...)``) in one store step."""
        return await self.jobs.enqueue(list(calls))

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Connect the stores (idempotent; also done on first use)."""
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                configure_logging(self.settings)
                await self.backend.open()
                self._opened = True

    async def close(self) -> None:
        """Stop in-process workers, wait for them to drain, then close the stores."""
        workers = list(self.workers)
        for worker in workers:
            worker.stop()
        await asyncio.gather(*(worker.wait_stopped() for worker in workers))
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        if self._cache is not None:
            await self._cache.close()
        if self._opened:
            with contextlib.suppress(Exception):  # what a worker's last flush did not send
                await self.history.flush()
            await self.backend.close()
            self._opened = False

    async def __aenter__(self) -> Conveyor:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def worker(
        self,
        *,
        queues: Iterable[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        handle_signals: bool = False,
    ) -> Worker:
        """A worker for this app; ``await worker.run()`` runs it, ``worker.stop()`` stops it."""
        return Worker(
            self,
            queues=list(queues) if queues is not None else None,
            concurrency=concurrency,
            burst=burst,
            handle_signals=handle_signals,
        )

    async def work(
        self,
        *,
        queues: Iterable[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        handle_signals: bool = False,
    ) -> WorkerStats:
        """Run a worker in this process until stopped, or until drained with ``burst``."""
        worker = self.worker(
            queues=queues, concurrency=concurrency, burst=burst, handle_signals=handle_signals
        )
        return await worker.run()

    # -- observability ---------------------------------------------------------

    async def metrics_text(self) -> bytes:
        """Every metric of this app in the Prometheus text format."""
        await self.open()
        return await self.metrics.exposition(self.store)

    async def _check_store(self) -> CheckResult:
        await self.open()
        await self.backend.ping()
        return CheckResult(Status.OK, self.settings.masked_url)

    async def _check_workers(self) -> CheckResult:
        if not self.workers:
            return CheckResult(Status.OK, "no workers in this process")
        limit = self.settings.sweep_interval * 3 + self.settings.poll_interval
        stale = [w.id for w in self.workers if time.monotonic() - w.last_beat > limit]
        if stale:
            return CheckResult(Status.DEGRADED, f"not heartbeating: {', '.join(stale)}")
        return CheckResult(Status.OK, f"{len(self.workers)} running")

    # -- events ----------------------------------------------------------------

    async def declare_for_workers(self) -> None:
        """Record this app's event subscriptions in the store (a worker is starting)."""
        if self._events is not None:
            await self._events.declare()

    @property
    def events(self) -> EventBus:
        """The event bus: ``@app.events.subscribe(...)``, ``await app.events.publish(...)``."""
        if self._events is None:
            from conveyor.events.bus import EventBus

            self._events = EventBus(self)
        return self._events

    # -- cache -----------------------------------------------------------------

    @property
    def cache(self) -> Cache:
        """The two-tier cache on this app's store (built on first use; closed with the app)."""
        if self._cache is None:
            from conveyor.cache.app import build_cache

            self._cache = build_cache(self.settings, self.metrics.registry, self.clock)
        return self._cache

    async def _check_cache(self) -> CheckResult:
        if self._cache is None:
            return CheckResult(Status.OK, "not in use")
        return await self._cache.check_health()

    # -- rate limits -----------------------------------------------------------------

    @property
    def rate_limits(self) -> RateLimits:
        """Rate limits on this app's store: policies, limiters, usage and reset."""
        if self._rate_limits is None:
            from conveyor.ratelimit.service import RateLimits

            self._rate_limits = RateLimits(
                self.settings, self.backend, self.clock, self.metrics.registry, self.open
            )
            self.history.add_source(self._rate_limits.metrics.history_totals)
        return self._rate_limits

    async def _check_rate_limits(self) -> CheckResult:
        if self._rate_limits is None:
            return CheckResult(Status.OK, "not in use")
        return await self._rate_limits.check_health()

    # -- sync facade -----------------------------------------------------------

    @property
    def sync(self) -> SyncClient:
        """Enqueue and read jobs from sync code: ``app.sync.get(job_id)``."""
        if self._sync is None:
            from conveyor.sync import SyncClient

            self._sync = SyncClient(self)
        return self._sync
