"""conveyor: durable background jobs and the rest of a Python service's backbone.

Only the names in ``__all__`` are public; every submodule is private.
"""

from conveyor.app import Conveyor
from conveyor.cache.cache import Cache
from conveyor.cache.stats import NamespaceStats as CacheStats
from conveyor.config import Settings
from conveyor.errors import (
    BadInputError,
    CacheError,
    CacheTimeoutError,
    CacheUnavailableError,
    ConfigError,
    ConflictError,
    ConveyorError,
    InvalidArgumentsError,
    InvalidScheduleError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    JobWaitTimeoutError,
    NonRetryableError,
    NotFoundError,
    OperationalError,
    PayloadTooLargeError,
    ProgrammingError,
    QueueBackoff,
    Retry,
    SandboxCrashedError,
    SandboxProtocolError,
    SerializationError,
    StoreRefusedError,
    StoreUnavailableError,
    TaskNotFoundError,
    TimedOutError,
    UnavailableError,
)
from conveyor.events.bus import EventBus
from conveyor.events.deadletters import DeadLetter
from conveyor.events.envelope import EventMeta
from conveyor.jobs.client import Call, Step
from conveyor.jobs.context import JobContext, current_job
from conveyor.jobs.events import JobEvents
from conveyor.jobs.flows import ChildResult, Flow, FlowClient
from conveyor.jobs.job import Job, JobError
from conveyor.jobs.retry import Backoff, Retention
from conveyor.jobs.schedule import Schedule
from conveyor.jobs.task import Task
from conveyor.jobs.worker import Worker, WorkerStats
from conveyor.observability.health import CheckResult, HealthReport, Status
from conveyor.stores.base import CancelResult, JobEvent, JobEventKind, JobState, LogLine
from conveyor.stores.limits import QueueLimits
from conveyor.sync import SyncJob

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "BadInputError",
    "Cache",
    "CacheError",
    "CacheStats",
    "CacheTimeoutError",
    "CacheUnavailableError",
    "Call",
    "CancelResult",
    "CheckResult",
    "ChildResult",
    "ConfigError",
    "ConflictError",
    "Conveyor",
    "ConveyorError",
    "DeadLetter",
    "EventBus",
    "EventMeta",
    "Flow",
    "FlowClient",
    "HealthReport",
    "InvalidArgumentsError",
    "InvalidScheduleError",
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
    "JobWaitTimeoutError",
    "LogLine",
    "NonRetryableError",
    "NotFoundError",
    "OperationalError",
    "PayloadTooLargeError",
    "ProgrammingError",
    "QueueBackoff",
    "QueueLimits",
    "Retention",
    "Retry",
    "SandboxCrashedError",
    "SandboxProtocolError",
    "Schedule",
    "SerializationError",
    "Settings",
    "Status",
    "Step",
    "StoreRefusedError",
    "StoreUnavailableError",
    "SyncJob",
    "Task",
    "TaskNotFoundError",
    "TimedOutError",
    "UnavailableError",
    "Worker",
    "WorkerStats",
    "__version__",
    "current_job",
]
