"""What a call to enqueue carries besides its arguments.

``EnqueueOptions`` are a call's overrides of its task's defaults (checked by
:func:`check_options` before anything is written); ``JobOptions`` are what is
stored with the job and read by the worker that runs it; ``Call`` and ``Step``
are task calls ready to enqueue, alone, in bulk or in a flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from conveyor.errors import BadInputError
from conveyor.jobs import dedupe
from conveyor.jobs.tracing import RequestContext

if TYPE_CHECKING:
    from conveyor.jobs.task import Task

R = TypeVar("R")

PRIORITY_RANGE = range(-1_000, 1_001)
"""Priorities run from -1000 to 1000; higher runs first, 0 is the default."""


FlowInput = Literal["context", "previous", "results"]
"""How a flow's parent gets its children's results: from ``current_job().children``
only, or also as its first argument (a chain step: the one child's result; a
group's ``then``: the list of the completed children's results)."""


class FlowRole(msgspec.Struct, frozen=True, omit_defaults=True):
    """A job's place in a flow (``jobs/flows.py``), stored with its options."""

    child: bool = False
    """It reports to a parent when it finishes."""
    parent: FlowInput | None = None
    """It waits for children; their results reach it this way."""


class JobOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """Per-job settings fixed at enqueue and stored with the job.

    ``None`` leaves the setting to the task in the worker that runs the job:
    event deliveries are enqueued that way, since the consumer, not the
    publisher, owns a handler's retry policy.
    """

    retries: int | None = None
    timeout: float | None = None
    flow: FlowRole | None = None
    context: RequestContext | None = None
    """The request (or job) that enqueued it (``jobs/tracing.py``)."""

    def under(self, task: Task[Any, Any] | None) -> JobOptions:
        """These options with what they leave open taken from ``task``."""
        if self.retries is not None and (
            self.timeout is not None or task is None or task.timeout is None
        ):
            return self
        return JobOptions(
            retries=self.retries if self.retries is not None else (task.retries if task else 0),
            timeout=self.timeout if self.timeout is not None else (task.timeout if task else None),
            flow=self.flow,
            context=self.context,
        )


options_decoder = msgspec.json.Decoder(JobOptions)


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-call overrides of a task's defaults (``task.options(...)``)."""

    job_id: str | None = None
    delay: float | None = None
    at: datetime | None = None
    priority: int | None = None
    queue: str | None = None
    retries: int | None = None
    timeout: float | None = None
    debounce: dedupe.KeyWindow | None = None
    throttle: dedupe.KeyWindow | None = None


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One task call, ready to enqueue (``task.call(...)``, for ``enqueue_many``)."""

    task: Task[Any, R]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: EnqueueOptions


@dataclass(frozen=True, slots=True)
class Step(Generic[R]):
    """A call whose first argument its flow fills in (``task.step(...)``).

    In ``app.flows.chain(...)`` it gets the previous step's result; as a
    group's ``then``, the list of the group's results.
    """

    task: Task[Any, R]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: EnqueueOptions


MAX_DELAY_SECONDS = 10 * 366 * 86_400
MAX_ID_LENGTH = 200


def check_options(opts: EnqueueOptions) -> None:
    """Reject malformed per-call options with one clear error before anything is written."""
    problems = []
    if opts.job_id is not None and not (
        isinstance(opts.job_id, str) and 0 < len(opts.job_id) <= MAX_ID_LENGTH
    ):
        problems.append(f"job_id must be a non-empty string of at most {MAX_ID_LENGTH} chars")
    if opts.queue is not None and not (isinstance(opts.queue, str) and opts.queue):
        problems.append("queue must be a non-empty string")
    if opts.priority is not None and (
        not isinstance(opts.priority, int) or opts.priority not in PRIORITY_RANGE
    ):
        problems.append(f"priority must be an integer in -1000..1000, got {opts.priority!r}")
    if opts.delay is not None and not number_in(opts.delay, 0, MAX_DELAY_SECONDS):
        problems.append(f"delay must be 0..{MAX_DELAY_SECONDS} seconds, got {opts.delay!r}")
    if opts.at is not None:
        if not isinstance(opts.at, datetime) or opts.at.tzinfo is None:
            problems.append("at must be a timezone-aware datetime")
        if opts.delay is not None:
            problems.append("give either delay or at, not both")
    if opts.timeout is not None and not number_in(opts.timeout, 1e-3, MAX_DELAY_SECONDS):
        problems.append(f"timeout must be a positive number of seconds, got {opts.timeout!r}")
    if opts.retries is not None and not (
        isinstance(opts.retries, int) and 0 <= opts.retries <= 1_000_000
    ):
        problems.append(f"retries must be an integer >= 0, got {opts.retries!r}")
    if opts.debounce is not None or opts.throttle is not None:
        problems += dedupe.check(
            opts.debounce,
            opts.throttle,
            job_id=opts.job_id,
            delayed=opts.delay is not None or opts.at is not None,
        )
    if problems:
        raise BadInputError("; ".join(problems))


def number_in(value: object, low: float, high: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
