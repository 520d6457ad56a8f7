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
    │   ├── RateLimitedError        too many requests; ``retry_after`` says when to come back
    │   ├── StoreUnavailableError   the store cannot be reached
    │   ├── JobFailedError          ``job.wait()`` on a job that failed or was cancelled
    │   ├── CacheError              the cache could not answer as asked
    │   │   └── CacheTimeoutError   a cache factory ran past its hard timeout (no stale value)
    │   └── ProblemError            an application's own error, shown over HTTP as RFC 9457
    │                               problem details (subclass it: status, title, type_uri)
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
from typing import Any, ClassVar


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


class RateLimitedError(OperationalError):
    """Too many requests; ``retry_after`` (seconds, if known) says when to try again."""

    status = 429

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class StoreUnavailableError(OperationalError):
    """The store could not be reached (or did not answer in time)."""

    status = 503


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


class ProblemError(OperationalError):
    """An application's own error, answered over HTTP as RFC 9457 problem details.

    Subclass it and set ``status``, ``title`` and ``type_uri`` (a URI that
    names the kind of problem); keyword arguments become extension members:

    >>> class OutOfCredit(ProblemError):
    ...     status = 403
    ...     title = "Not enough credit"
    ...     type_uri = "https://example.com/problems/out-of-credit"
    >>> raise OutOfCredit("Your balance is 30, the price is 50.", balance=30)
    """

    status = 400
    title: ClassVar[str | None] = None
    """A short summary of the kind of problem (default: the status's reason phrase)."""
    type_uri: ClassVar[str] = "about:blank"
    RESERVED: ClassVar[frozenset[str]] = frozenset(
        {"type", "title", "status", "detail", "instance", "request_id"}
    )

    def __init__(self, detail: str = "", **extensions: Any) -> None:
        clash = self.RESERVED.intersection(extensions)
        if clash:
            raise ProgrammingError(
                f"{type(self).__name__}: extension members may not be named {sorted(clash)}"
            )
        self.detail = detail
        self.extensions = extensions
        super().__init__(detail or self.title or type(self).__name__)


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
