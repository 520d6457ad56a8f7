"""The public surface is exactly what ``conveyor.__all__`` says."""

from __future__ import annotations

import conveyor

EXPECTED = {
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
    "JobTimeoutError",
    "JobState",
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
}


def test_public_names_are_pinned() -> None:
    assert set(conveyor.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented() -> None:
    for name in conveyor.__all__:
        value = getattr(conveyor, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"


def test_errors_form_one_tree() -> None:
    operational = [
        conveyor.BadInputError,
        conveyor.ConfigError,
        conveyor.SerializationError,
        conveyor.PayloadTooLargeError,
        conveyor.InvalidArgumentsError,
        conveyor.InvalidScheduleError,
        conveyor.NotFoundError,
        conveyor.TaskNotFoundError,
        conveyor.ConflictError,
        conveyor.StoreUnavailableError,
        conveyor.JobFailedError,
        conveyor.CacheError,
        conveyor.CacheTimeoutError,
        conveyor.RateLimitedError,
        conveyor.RateLimitUnavailableError,
    ]
    for error in operational:
        assert issubclass(error, conveyor.OperationalError)
    assert issubclass(conveyor.OperationalError, conveyor.ConveyorError)
    assert issubclass(conveyor.ProgrammingError, conveyor.ConveyorError)
    assert not issubclass(conveyor.ProgrammingError, conveyor.OperationalError)
    assert issubclass(conveyor.RateLimitUnavailableError, conveyor.StoreUnavailableError)
    assert conveyor.RateLimitedError.status == 429
    assert conveyor.RateLimitUnavailableError.status == 503
