"""conveyor: durable background jobs and the rest of a Python service's backbone.

Only the names in ``__all__`` are public; every submodule is private. The
service layer's names (``as_service``, ``ServiceOptions``, ``request_timeout``,
``api_version``, ``rate_limit``, ``RateLimitOptions``, ``Caller``, ``AdminOptions``,
``ApiKey``, ``new_api_key``) are imported on first use, so a worker that imports
``conveyor`` never imports FastAPI or uvicorn.
"""

from typing import TYPE_CHECKING, Any

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
    ProblemError,
    ProgrammingError,
    QueueBackoff,
    RateLimitedError,
    RateLimitUnavailableError,
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
from conveyor.jobs.context import JobContext, current_job
from conveyor.jobs.events import JobEvents
from conveyor.jobs.flows import ChildResult, Flow, FlowClient
from conveyor.jobs.job import Job, JobError
from conveyor.jobs.options import Call, Step
from conveyor.jobs.pages import JobPage
from conveyor.jobs.retry import Backoff, Retention
from conveyor.jobs.schedule import Schedule
from conveyor.jobs.sync_job import SyncJob
from conveyor.jobs.task import Task
from conveyor.jobs.worker import Worker, WorkerStats
from conveyor.observability.audit import AuditClient, AuditPage, AuditRecord
from conveyor.observability.health import CheckResult, HealthReport, Status
from conveyor.observability.history import HistoryClient, HistorySeries
from conveyor.ratelimit.decision import RateDecision
from conveyor.ratelimit.keys import TrustedProxies, rate_key
from conveyor.ratelimit.limiter import RateLimiter
from conveyor.ratelimit.policies import RatePolicy
from conveyor.ratelimit.quota import RateQuota
from conveyor.ratelimit.rates import Rate
from conveyor.ratelimit.service import RateLimits
from conveyor.ratelimit.tiers import TierLookup
from conveyor.stores.base import (
    CancelResult,
    JobEvent,
    JobEventKind,
    JobState,
    LogLine,
    WorkerInfo,
)
from conveyor.stores.history import HistoryRow
from conveyor.stores.limits import QueueLimits

if TYPE_CHECKING:
    from conveyor.web.admin.options import AdminOptions, ApiKey, new_api_key
    from conveyor.web.options import ServiceOptions
    from conveyor.web.ratelimit.dependency import rate_limit
    from conveyor.web.ratelimit.options import Caller, RateLimitOptions
    from conveyor.web.service import as_service
    from conveyor.web.timeouts import request_timeout
    from conveyor.web.versioning import api_version

__version__ = "0.1.0"

_LAZY = {
    "AdminOptions": "conveyor.web.admin.options",
    "ApiKey": "conveyor.web.admin.options",
    "new_api_key": "conveyor.web.admin.options",
    "as_service": "conveyor.web.service",
    "ServiceOptions": "conveyor.web.options",
    "request_timeout": "conveyor.web.timeouts",
    "api_version": "conveyor.web.versioning",
    "rate_limit": "conveyor.web.ratelimit.dependency",
    "RateLimitOptions": "conveyor.web.ratelimit.options",
    "Caller": "conveyor.web.ratelimit.options",
}


def __getattr__(name: str) -> Any:
    """The service layer's names, imported on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AdminOptions",
    "ApiKey",
    "AuditClient",
    "AuditPage",
    "AuditRecord",
    "Backoff",
    "BadInputError",
    "Cache",
    "CacheError",
    "CacheStats",
    "CacheTimeoutError",
    "CacheUnavailableError",
    "Call",
    "Caller",
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
    "HistoryClient",
    "HistoryRow",
    "HistorySeries",
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
    "JobPage",
    "JobState",
    "JobTimeoutError",
    "JobWaitTimeoutError",
    "LogLine",
    "NonRetryableError",
    "NotFoundError",
    "OperationalError",
    "PayloadTooLargeError",
    "ProblemError",
    "ProgrammingError",
    "QueueBackoff",
    "QueueLimits",
    "Rate",
    "RateDecision",
    "RateLimitOptions",
    "RateLimitUnavailableError",
    "RateLimitedError",
    "RateLimiter",
    "RateLimits",
    "RatePolicy",
    "RateQuota",
    "Retention",
    "Retry",
    "SandboxCrashedError",
    "SandboxProtocolError",
    "Schedule",
    "SerializationError",
    "ServiceOptions",
    "Settings",
    "Status",
    "Step",
    "StoreRefusedError",
    "StoreUnavailableError",
    "SyncJob",
    "Task",
    "TaskNotFoundError",
    "TierLookup",
    "TimedOutError",
    "TrustedProxies",
    "UnavailableError",
    "Worker",
    "WorkerInfo",
    "WorkerStats",
    "__version__",
    "api_version",
    "as_service",
    "current_job",
    "new_api_key",
    "rate_key",
    "rate_limit",
    "request_timeout",
]
