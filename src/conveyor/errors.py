"""Every exception conveyor raises, in one tree.

    ConveyorError
    ├── OperationalError                expected, and its message is safe to show to a caller
    │   ├── BadInputError           400 the caller asked for something malformed (nothing written)
    │   │   ├── ConfigError             settings are invalid (lists every problem)
    │   │   │   └── StoreConfigError    the store's server is set up to lose jobs (a Redis
    │   │   │                           eviction policy); names the fix
    │   │   ├── SerializationError      a value is not JSON-serializable
    │   │   ├── PayloadTooLargeError 413
    │   │   ├── InvalidArgumentsError   arguments do not fit the task's signature
    │   │   ├── InvalidScheduleError    a bad cron expression, time zone or interval
    │   │   └── NotSupportedError       the store cannot do what was asked (``app.within``
    │   │                               needs a PostgreSQL store and connection)
    │   ├── NotFoundError           404 no such job, task, queue or schedule
    │   │   └── TaskNotFoundError
    │   ├── ConflictError           409 the job is in a state that forbids the request
    │   ├── RateLimitedError        429 a rate limit refused the request; carries the decision
    │   ├── UnavailableError        503 a store could not serve the call; it may work later
    │   │   ├── StoreUnavailableError   the job store is unreachable, did not answer in time,
    │   │   │   │                       or says to come back later (read-only, loading); ``kind``
    │   │   │   ├── StoreFullError      ... has no room (Redis at maxmemory, a full disk);
    │   │   │   │                       nothing of the call was written
    │   │   │   └── RateLimitUnavailableError  a rate limit's store, and the limiter fails closed
    │   │   └── CacheUnavailableError * a counter (incr/decr) while the shared tier is unreachable
    │   ├── TimedOutError           504 a deadline passed (also a built-in TimeoutError)
    │   │   ├── JobWaitTimeoutError     ``job.wait(timeout)`` gave up before the job finished
    │   │   ├── CacheTimeoutError *     a cache factory ran past its hard timeout, nothing stale
    │   │   └── JobTimeoutError         an attempt ran past its task's ``timeout``
    │   ├── CacheError              503 the cache could not answer as asked (an outage alone
    │   │                               never raises: reads and writes degrade to the local tier)
    │   ├── JobFailedError              ``job.wait()`` on a job that failed or was cancelled
    │   ├── JobCancelledError           ``raise_if_cancelled()`` in a task whose job was cancelled
    │   ├── SandboxCrashedError         a sandboxed attempt's process died (a signal, an exit code)
    │   │   └── SandboxProtocolError    ... or sent a frame the worker refuses, and was killed
    │   └── ProblemError                an application's own error, shown over HTTP as RFC 9457
    │                                   problem details (subclass it: status, title, type_uri)
    ├── ProgrammingError                a bug (in conveyor or in how it is used): logged with
    │   │                               its traceback, shown as a generic 500
    │   └── StoreRefusedError           the store refused a command for a reason other than an
    │                                   outage (a script error, a key of the wrong type, an ACL)
    ├── NonRetryableError               raised by a task: fail the job now, retries or not
    ├── Retry                           raised by a task: another attempt after ``delay`` seconds
    └── QueueBackoff                    raised by a task: stop its whole queue for ``seconds``
                                        (a 429 downstream); the job goes back, attempt not counted

    * also a CacheError, so ``except CacheError`` catches everything the cache raises.

``JobTimeoutError``, ``JobCancelledError`` and the sandbox errors are raised
inside the worker and recorded as the job's error (its ``type`` is the class
name): a caller sees them in ``job.error`` or ``JobFailedError.error_type``,
and a task may list them in ``non_retryable``.

``RemoteTaskError`` (not exported) carries an exception a sandboxed task raised
in its child process to the worker, which records it under the child's type.
"""

from __future__ import annotations

import builtins
import signal
from collections.abc import Sequence
from typing import Any, ClassVar


class ConveyorError(Exception):
    """Root of every error conveyor raises."""


class OperationalError(ConveyorError):
    """An expected failure; its message is safe to show to a caller."""

    status = 500


# -- bad input -------------------------------------------------------------------------


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


class StoreConfigError(ConfigError):
    """The store's server is configured in a way that can lose jobs; the message
    names the fix. On Redis: a ``maxmemory-policy`` other than ``noeviction`` (Redis
    would evict jobs it acknowledged). ``setting`` is the server's setting,
    ``observed`` its value."""

    def __init__(self, setting: str, observed: str, problem: str) -> None:
        self.setting = setting
        self.observed = observed
        self.problems = [problem]
        BadInputError.__init__(self, problem)


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


class NotSupportedError(BadInputError):
    """The store (or the connection given) cannot do what was asked, e.g. enqueueing in
    the application's own transaction (``app.within(conn)``) needs a PostgreSQL store."""


# -- not found, conflict -------------------------------------------------------------


class NotFoundError(OperationalError):
    """No such job, task or queue."""

    status = 404


class TaskNotFoundError(NotFoundError):
    """The job names a task that this app has not registered."""


class ConflictError(OperationalError):
    """The job is in a state that forbids the request (e.g. removing an active job)."""

    status = 409


class RateLimitedError(OperationalError):
    """Too many requests. ``retry_after`` (seconds, if known) says when to try again;
    raised by a rate limiter (``limiter.hit``), ``decision`` is its
    :class:`~conveyor.RateDecision`: each policy's quota and the violated ones."""

    status = 429

    def __init__(
        self,
        message: str = "rate limited",
        retry_after: float | None = None,
        *,
        decision: Any = None,
    ) -> None:
        self.retry_after = retry_after
        self.decision = decision
        super().__init__(message)


# -- unavailable, timed out ----------------------------------------------------------


class UnavailableError(OperationalError):
    """A store could not serve the call now; the same call may succeed later."""

    status = 503


STORE_ERROR_KINDS = (
    "unreachable",
    "timeout",
    "full",
    "read_only",
    "busy",
    "loading",
    "refused",
    "other",
)
"""What went wrong with a store call (``StoreUnavailableError.kind``, ``StoreRefusedError.kind``):
unreachable (no connection, a cluster down), timeout, full (Redis maxmemory, a full disk),
read_only (a replica during a failover), busy (a script running, a slot moving, a locked
file), loading (a server reading its data after a restart), refused (a command the
store will not run: a bug or a misconfiguration), other. The metric
``conveyor_store_errors_total`` counts failed calls by these labels."""


class StoreUnavailableError(UnavailableError):
    """The store could not be reached, did not answer in time, or asked to come back later.

    On Redis that includes a replica that is read-only during a failover, a
    server loading its data, and a cluster that is down. ``kind`` says which
    (one of ``STORE_ERROR_KINDS``).
    """

    def __init__(self, message: str, kind: str = "unreachable") -> None:
        self.kind = kind
        super().__init__(message)


class StoreFullError(StoreUnavailableError):
    """The store has no room for the write: Redis at ``maxmemory`` with the
    ``noeviction`` policy, a SQLite file on a full disk. Nothing of the call was
    written (a Redis script refused for memory is refused before its first write);
    it may succeed once memory is freed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "full")


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


class CacheError(OperationalError):
    """The cache could not answer as asked (an outage alone never raises: it degrades)."""

    status = 503


class CacheUnavailableError(UnavailableError, CacheError):
    """``incr``/``decr`` while the shared tier is unreachable: a counter cannot be
    answered from one process's local tier."""


class TimedOutError(OperationalError, builtins.TimeoutError):
    """A deadline passed. Also a built-in ``TimeoutError``, so ``except TimeoutError``
    catches it as it catches asyncio's."""

    status = 504


class JobWaitTimeoutError(TimedOutError):
    """``job.wait(timeout)`` gave up before the job finished (the job itself goes on)."""

    def __init__(self, job_id: str, state: str, timeout: float, hint: str = "") -> None:
        self.job_id = job_id
        self.state = state
        self.timeout = timeout
        message = f"job {job_id} still {state} after {timeout}s"
        super().__init__(f"{message}; {hint}" if hint else message)


class CacheTimeoutError(TimedOutError, CacheError):
    """A ``get_or_set`` factory ran past its hard timeout and no stale value could stand in."""

    def __init__(self, key: str, timeout: float) -> None:
        self.key = key
        self.timeout = timeout
        super().__init__(f"computing cache key {key!r} took longer than {timeout}s")


class JobTimeoutError(TimedOutError):
    """An attempt ran past its task's ``timeout``; it counts as a failed attempt."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"attempt exceeded its timeout of {timeout}s")


# -- how an attempt ended -------------------------------------------------------------


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


class JobCancelledError(OperationalError):
    """Raised by :meth:`JobContext.raise_if_cancelled` once the job is cancelled."""


class SandboxCrashedError(OperationalError):
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
        OperationalError.__init__(
            self, f"the sandboxed task's process {what}; the worker killed it"
        )
        self.exit_code = None
        self.signal = "SIGKILL"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# -- bugs ------------------------------------------------------------------------------


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


class StoreRefusedError(ProgrammingError):
    """The store refused a command for a reason other than an outage: a script error,
    a key of the wrong type where conveyor keeps its data, a command the server's ACL
    denies. Retrying does not help; someone has to look."""

    kind = "refused"


# -- raised by task code to steer the job ------------------------------------------


class NonRetryableError(ConveyorError):
    """Raise (or subclass) from a task to fail the job without further retries."""


class Retry(ConveyorError):
    """Raise from a task to ask for another attempt after ``delay`` seconds.

    The attempt still counts against the task's ``retries``.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        self.delay = delay
        super().__init__(reason or f"retry requested (delay={delay})")


class QueueBackoff(ConveyorError):
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


# -- a sandboxed task's own exception, carried to the worker ---------------------------


class RemoteTaskError(ConveyorError):
    """An exception raised by a task inside its sandbox, as the child reported it.

    The job's error records ``type_name`` and the child's traceback, as if the
    exception had been raised in the worker. Never raised to a caller.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        self.type_name = type_name
        self.traceback_text = traceback_text
        super().__init__(message)


class RemoteNonRetryableError(RemoteTaskError, NonRetryableError):
    """A sandboxed task raised a ``NonRetryableError`` (or one its task lists as final)."""


class RemoteRetry(RemoteTaskError, Retry):
    """A sandboxed task raised ``Retry(delay)``."""

    def __init__(
        self, type_name: str, message: str, traceback_text: str, delay: float | None
    ) -> None:
        Retry.__init__(self, delay, message)
        self.type_name = type_name
        self.traceback_text = traceback_text


class RemoteQueueBackoff(RemoteTaskError, QueueBackoff):
    """A sandboxed task raised ``QueueBackoff(seconds)``."""

    def __init__(self, type_name: str, message: str, traceback_text: str, seconds: float) -> None:
        QueueBackoff.__init__(self, seconds, message)
        self.type_name = type_name
        self.traceback_text = traceback_text
