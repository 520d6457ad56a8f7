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
    ConfigError,
    ConflictError,
    ConveyorError,
    InvalidArgumentsError,
    InvalidScheduleError,
    JobFailedError,
    JobTimeoutError,
    NonRetryableError,
    NotFoundError,
    OperationalError,
    PayloadTooLargeError,
    ProgrammingError,
    QueueBackoff,
    RateLimitedError,
    RateLimitUnavailableError,
    Retry,
    SandboxCrashedError,
    SerializationError,
    StoreUnavailableError,
    TaskNotFoundError,
)
from conveyor.events.bus import EventBus
from conveyor.events.deadletters import DeadLetter
from conveyor.events.envelope import EventMeta
from conveyor.jobs.client import Call, Step
from conveyor.jobs.context import JobCancelledError, JobContext, current_job
from conveyor.jobs.events import JobEvents
from conveyor.jobs.flows import ChildResult, Flow, FlowClient
from conveyor.jobs.job import Job, JobError
from conveyor.jobs.retry import Backoff, Retention
from conveyor.jobs.schedule import Schedule
from conveyor.jobs.task import Task
from conveyor.jobs.worker import Worker, WorkerStats
from conveyor.observability.health import CheckResult, HealthReport, Status
from conveyor.ratelimit.decision import RateDecision
from conveyor.ratelimit.keys import TrustedProxies, rate_key
from conveyor.ratelimit.limiter import RateLimiter
from conveyor.ratelimit.policies import RatePolicy
from conveyor.ratelimit.quota import RateQuota
from conveyor.ratelimit.rates import Rate
from conveyor.ratelimit.service import RateLimits
from conveyor.ratelimit.tiers import TierLookup
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
    "LogLine",
    "NonRetryableError",
    "NotFoundError",
    "OperationalError",
    "PayloadTooLargeError",
    "ProgrammingError",
    "QueueBackoff",
    "QueueLimits",
    "Rate",
    "RateDecision",
    "RateLimitUnavailableError",
    "RateLimitedError",
    "RateLimiter",
    "RateLimits",
    "RatePolicy",
    "RateQuota",
    "Retention",
    "Retry",
    "SandboxCrashedError",
    "Schedule",
    "SerializationError",
    "Settings",
    "Status",
    "Step",
    "StoreUnavailableError",
    "SyncJob",
    "Task",
    "TaskNotFoundError",
    "TierLookup",
    "TrustedProxies",
    "Worker",
    "WorkerStats",
    "__version__",
    "current_job",
    "rate_key",
]
