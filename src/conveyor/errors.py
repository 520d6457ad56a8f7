"""Every error conveyor raises, in one tree.

    ConveyorError
    ├── OperationalError            expected, safe to show to a caller
    │   ├── BadInputError           the caller asked for something malformed
    │   │   ├── ConfigError         settings are invalid (lists every problem)
    │   │   ├── SerializationError  a value is not JSON-serializable
    │   │   ├── PayloadTooLargeError
    │   │   ├── InvalidArgumentsError   arguments do not fit the task's signature
    │   │   └── InvalidScheduleError    a bad cron expression, time zone or interval
    │   ├── NotFoundError           no such job, task, queue or schedule
    │   │   └── TaskNotFoundError
    │   ├── ConflictError           the job is in a state that forbids the request
    │   ├── StoreUnavailableError   the store cannot be reached
    │   │   └── RateLimitUnavailableError   ... and the rate limiter fails closed (503)
    │   ├── RateLimitedError        a rate limit refused the request (429); carries the decision
    │   ├── JobFailedError          ``job.wait()`` on a job that failed or was cancelled
    │   └── CacheError              the cache could not answer as asked
    │       └── CacheTimeoutError   a cache factory ran past its hard timeout (no stale value)
    └── ProgrammingError            a bug: logged with traceback, shown as a generic 500

Task code may raise these to steer retries:

    NonRetryableError               fails the job at once, retries or not
    Retry                           asks for another attempt after ``delay`` seconds
    QueueBackoff                    backs the whole queue off (a 429 downstream); the job
                                    goes back without counting an attempt

Recorded as a job's error (retried per the task's policy like any other):

    JobTimeoutError (a TimeoutError)    an attempt ran past the task's ``timeout``
    SandboxCrashedError             a sandboxed attempt's process died (a signal, an exit code)
        SandboxProtocolError        ... or sent a frame the worker refuses, and was killed
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.ratelimit.decision import RateDecision


class ConveyorError(Exception):
    """Root of every error conveyor raises."""


class OperationalError(ConveyorError):
    """An expected failure; its message is safe to show to a caller."""

    status = 500


class BadInputError(OperationalError):
    """The caller asked for something malformed; nothing was written."""

    status = 400


class ConfigError(BadInputError):
    """Settings failed validation; ``problems`` lists every one of them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid conveyor configuration ({len(self.problems)} problems):\n{listed}"
        )


class SerializationError(BadInputError):
    """A payload, result or progress value cannot be encoded as JSON."""


class PayloadTooLargeError(BadInputError):
    """An encoded payload, result or progress value is over ``max_payload_bytes``."""

    status = 413

    def __init__(self, size: int, limit: int, what: str = "payload") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")


class InvalidArgumentsError(BadInputError):
    """The arguments given to ``enqueue`` do not bind to the task's signature."""


class InvalidScheduleError(BadInputError):
    """A schedule's cron expression, time zone, interval or policy is invalid."""


class NotFoundError(OperationalError):
    """No such job, task or queue."""

    status = 404


class TaskNotFoundError(NotFoundError):
    """The job names a task that this app has not registered."""


class ConflictError(OperationalError):
    """The job is in a state that forbids the request (e.g. removing an active job)."""

    status = 409


class StoreUnavailableError(OperationalError):
    """The store could not be reached (or did not answer in time)."""

    status = 503


class RateLimitUnavailableError(StoreUnavailableError):
    """The shared rate-limit store could not answer within the limiter's budget, and
    the limiter fails closed: the request is refused as unavailable (503), not as
    over its limit. ``policies`` names the policies that could not be checked."""

    def __init__(self, policies: Sequence[str], reason: str) -> None:
        self.policies = list(policies)
        super().__init__(
            f"rate limits {', '.join(self.policies)} could not be checked ({reason});"
            " failing closed"
        )


class RateLimitedError(OperationalError):
    """A rate limit refused the request. ``decision`` holds each policy's quota, the
    violated ones and ``retry_after`` (seconds)."""

    status = 429

    def __init__(self, decision: RateDecision) -> None:
        self.decision = decision
        violated = ", ".join(q.policy for q in decision.violated) or "?"
        tier = f" (tier {decision.tier})" if decision.tier else ""
        super().__init__(f"rate limited by {violated}{tier}; retry in {decision.retry_after:g}s")

    @property
    def retry_after(self) -> float:
        """Seconds until the request would pass every policy that refused it."""
        return self.decision.retry_after


class JobFailedError(OperationalError):
    """Raised by ``Job.wait()`` when the job ended failed or cancelled."""

    def __init__(
        self, job_id: str, state: str, error_type: str | None, message: str | None
    ) -> None:
        self.job_id = job_id
        self.state = state
        self.error_type = error_type
        self.error_message = message
        detail = f": {error_type}: {message}" if error_type else ""
        super().__init__(f"job {job_id} is {state}{detail}")


class CacheError(OperationalError):
    """The cache could not answer as asked (an outage alone never raises: it degrades)."""

    status = 503


class CacheTimeoutError(CacheError):
    """A ``get_or_set`` factory ran past its hard timeout and no stale value could stand in."""

    def __init__(self, key: str, timeout: float) -> None:
        self.key = key
        self.timeout = timeout
        super().__init__(f"computing cache key {key!r} took longer than {timeout}s")


class ProgrammingError(ConveyorError):
    """A bug in conveyor or in how it is used."""


class NonRetryableError(Exception):
    """Raise (or subclass) from a task to fail the job without further retries."""


class Retry(Exception):
    """Raise from a task to ask for another attempt after ``delay`` seconds.

    The attempt still counts against the task's ``retries``.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        self.delay = delay
        super().__init__(reason or f"retry requested (delay={delay})")


class QueueBackoff(Exception):
    """Raise from a task to stop its queue for ``seconds`` (e.g. a downstream 429).

    No worker claims a job of the queue before then; this job goes back to
    waiting without counting the attempt, first in line once the back-off ends.

    >>> if response.status_code == 429:
    ...     raise QueueBackoff(float(response.headers.get("Retry-After", 30)))
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        if not (
            isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and 0 <= seconds <= MAX_BACKOFF_SECONDS
        ):
            raise BadInputError(
                f"QueueBackoff seconds must be 0..{MAX_BACKOFF_SECONDS}, got {seconds!r}"
            )
        self.seconds = float(seconds)
        super().__init__(reason or f"queue backed off for {seconds}s")


MAX_BACKOFF_SECONDS = 7 * 86_400
"""The longest a queue may be backed off in one call."""


class JobTimeoutError(TimeoutError):
    """An attempt ran past its task's ``timeout``; it counts as a failed attempt."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"attempt exceeded its timeout of {timeout}s")


class SandboxCrashedError(Exception):
    """The child process of a ``sandbox=True`` attempt died before it answered.

    ``signal`` names the signal that killed it (``"SIGSEGV"``), else
    ``exit_code`` says how it exited.
    """

    def __init__(self, returncode: int) -> None:
        self.exit_code = returncode if returncode >= 0 else None
        self.signal = _signal_name(-returncode) if returncode < 0 else None
        how = f"killed by {self.signal}" if self.signal else f"exited with code {returncode}"
        super().__init__(f"the sandboxed task's process {how} before it answered")


class SandboxProtocolError(SandboxCrashedError):
    """The child of a ``sandbox=True`` attempt sent a frame the worker refuses (larger
    than ``max_payload_bytes`` allows, or not a message); the worker killed it."""

    def __init__(self, what: str) -> None:
        Exception.__init__(self, f"the sandboxed task's process {what}; the worker killed it")
        self.exit_code = None
        self.signal = "SIGKILL"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
