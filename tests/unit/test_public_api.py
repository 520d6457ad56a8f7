"""The public surface is exactly what ``conveyor.__all__`` says."""

from __future__ import annotations

import subprocess
import sys

import pytest

import conveyor

EXPECTED = {
    "AuditRecord",
    "AuditPage",
    "AuditClient",
    "HistoryRow",
    "HistorySeries",
    "HistoryClient",
    "WorkerInfo",
    "JobPage",
    "AdminOptions",
    "ApiKey",
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
    "JobTimeoutError",
    "JobWaitTimeoutError",
    "JobState",
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
    "WorkerStats",
    "__version__",
    "api_version",
    "as_service",
    "current_job",
    "new_api_key",
    "rate_key",
    "rate_limit",
    "request_timeout",
}


def test_public_names_are_pinned() -> None:
    assert set(conveyor.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented() -> None:
    for name in conveyor.__all__:
        value = getattr(conveyor, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"


def test_importing_conveyor_does_not_import_the_web_stack() -> None:
    """A worker imports conveyor; FastAPI and uvicorn load only when the service layer is used."""
    code = (
        "import sys, conveyor, conveyor.cli\n"
        "assert not {'fastapi', 'uvicorn', 'conveyor.web.service'} & set(sys.modules)\n"
        "conveyor.as_service\n"
        "assert 'fastapi' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        conveyor.no_such_name
