"""Turn how an attempt ended into an :class:`Outcome` for the store.

This is the one place that decides between completed, retry and failed,
so every store behaves the same.
"""

from __future__ import annotations

import math
import traceback
from typing import Any

import msgspec

from conveyor import serialization
from conveyor.errors import NonRetryableError, RemoteTaskError, Retry, SerializationError
from conveyor.jobs.retry import Backoff, Retention
from conveyor.observability.logging import mask_text
from conveyor.stores.base import ClaimedJob, JobState, Outcome

MAX_TRACEBACK_CHARS = 16_000
MAX_DELAY_SECONDS = 366 * 86_400.0
"""Longest retry delay; a longer (or infinite) one is cut to this."""


class OutcomeKind:
    COMPLETED = "completed"
    RETRIED = "retried"
    FAILED = "failed"
    CANCELLED = "cancelled"


def error_json(exc: BaseException, message: str | None = None) -> bytes:
    """The stored error: type, message and traceback, with secrets masked.

    An exception raised inside a sandbox is recorded as the child saw it.
    """
    if isinstance(exc, RemoteTaskError):
        kind, tb = exc.type_name, exc.traceback_text
    else:
        kind, tb = type(exc).__qualname__, "".join(traceback.format_exception(exc))
    if len(tb) > MAX_TRACEBACK_CHARS:
        tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
    text = mask_text(message or str(exc))
    return msgspec.json.encode({"type": kind, "message": text, "traceback": mask_text(tb)})


def completed(
    job: ClaimedJob, result: Any, now: int, retention: Retention, limit: int
) -> tuple[Outcome, str]:
    """The outcome of an attempt that returned ``result``."""
    try:
        encoded = serialization.dumps(result, what="job result", limit=limit)
    except SerializationError as exc:  # the function ran, but its result cannot be kept
        return failed(job, exc, now, retention), OutcomeKind.FAILED
    return (
        Outcome(
            id=job.id,
            token=job.token,
            queue=job.queue,
            state=JobState.COMPLETED,
            finished_at=now,
            result=encoded,
            expires_at=_expiry(now, retention.completed_for),
            keep=retention.completed,
        ),
        OutcomeKind.COMPLETED,
    )


def failed(
    job: ClaimedJob, exc: BaseException, now: int, retention: Retention, message: str | None = None
) -> Outcome:
    return Outcome(
        id=job.id,
        token=job.token,
        queue=job.queue,
        state=JobState.FAILED,
        finished_at=now,
        error=error_json(exc, message),
        expires_at=_expiry(now, retention.failed_for),
        keep=retention.failed,
    )


def cancelled(job: ClaimedJob, now: int, retention: Retention) -> Outcome:
    return Outcome(
        id=job.id,
        token=job.token,
        queue=job.queue,
        state=JobState.CANCELLED,
        finished_at=now,
        error=msgspec.json.encode(
            {"type": "Cancelled", "message": "cancelled while running", "traceback": None}
        ),
        expires_at=_expiry(now, retention.failed_for),
    )


def after_error(
    job: ClaimedJob,
    exc: BaseException,
    now: int,
    *,
    retries: int,
    backoff: Backoff,
    non_retryable: tuple[type[BaseException], ...],
    retention: Retention,
) -> tuple[Outcome, str]:
    """Retry the job after its backoff if it has retries left, else fail it."""
    final = isinstance(exc, NonRetryableError | SerializationError) or (
        bool(non_retryable) and isinstance(exc, non_retryable)
    )
    if final or job.attempts > retries:
        return failed(job, exc, now, retention), OutcomeKind.FAILED
    delay = exc.delay if isinstance(exc, Retry) and exc.delay is not None else backoff(job.attempts)
    delay = 0.0 if math.isnan(delay) else min(max(delay, 0.0), MAX_DELAY_SECONDS)
    run_at = now + int(delay * 1000)
    state = JobState.SCHEDULED if run_at > now else JobState.WAITING
    outcome = Outcome(
        id=job.id,
        token=job.token,
        queue=job.queue,
        state=state,
        finished_at=now,
        error=error_json(exc),
        run_at=run_at,
        expires_at=_expiry(now, retention.failed_for),  # used if it turns out cancelled
    )
    return outcome, OutcomeKind.RETRIED


def _expiry(now: int, seconds: float | None) -> int | None:
    return None if seconds is None else now + int(seconds * 1000)
