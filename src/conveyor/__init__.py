"""conveyor: durable background jobs and the rest of a Python service's backbone.

Only the names in ``__all__`` are public; every submodule is private.
"""

from conveyor.app import Conveyor
from conveyor.config import Settings
from conveyor.errors import (
    BadInputError,
    ConfigError,
    ConflictError,
    ConveyorError,
    InvalidArgumentsError,
    JobFailedError,
    JobTimeoutError,
    NonRetryableError,
    NotFoundError,
    OperationalError,
    PayloadTooLargeError,
    ProgrammingError,
    Retry,
    SandboxCrashedError,
    SerializationError,
    StoreUnavailableError,
    TaskNotFoundError,
)
from conveyor.jobs.client import Call
from conveyor.jobs.context import JobCancelledError, JobContext, current_job
from conveyor.jobs.events import JobEvents
from conveyor.jobs.job import Job, JobError
from conveyor.jobs.retry import Backoff, Retention
from conveyor.jobs.task import Task
from conveyor.jobs.worker import Worker, WorkerStats
from conveyor.observability.health import CheckResult, HealthReport, Status
from conveyor.stores.base import CancelResult, JobEvent, JobEventKind, JobState, LogLine
from conveyor.sync import SyncJob

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "BadInputError",
    "Call",
    "CancelResult",
    "CheckResult",
    "ConfigError",
    "ConflictError",
    "Conveyor",
    "ConveyorError",
    "HealthReport",
    "InvalidArgumentsError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobError",
    "JobEvent",
    "JobEventKind",
    "JobEvents",
    "JobFailedError",
    "JobState",
    "JobTimeoutError",
    "LogLine",
    "NonRetryableError",
    "NotFoundError",
    "OperationalError",
    "PayloadTooLargeError",
    "ProgrammingError",
    "Retention",
    "Retry",
    "SandboxCrashedError",
    "SerializationError",
    "Settings",
    "Status",
    "StoreUnavailableError",
    "SyncJob",
    "Task",
    "TaskNotFoundError",
    "Worker",
    "WorkerStats",
    "__version__",
    "current_job",
]
