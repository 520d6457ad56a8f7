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
    "JobTimeoutError",
    "JobWaitTimeoutError",
    "JobState",
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
}


def test_public_names_are_pinned() -> None:
    assert set(conveyor.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented() -> None:
    for name in conveyor.__all__:
        value = getattr(conveyor, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"
