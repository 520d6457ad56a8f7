"""How an exception reported by a sandbox child is rebuilt in the worker."""

from __future__ import annotations

from conveyor import QueueBackoff, Retry
from conveyor.jobs.sandbox import _Raised, _remote_error


class _Task:
    non_retryable: tuple[type[BaseException], ...] = ()


def test_a_retry_keeps_its_reason_and_delay() -> None:
    raised = _Raised("app.Retry", "rate limited by the bank", "tb", ["conveyor.errors.Retry"], 2.5)
    error = _remote_error(raised, _Task())  # type: ignore[arg-type]
    assert isinstance(error, Retry)
    assert str(error) == "rate limited by the bank"
    assert error.delay == 2.5


def test_a_queue_backoff_keeps_its_seconds() -> None:
    raised = _Raised("app.QueueBackoff", "429", "tb", ["conveyor.errors.QueueBackoff"], None, 30)
    error = _remote_error(raised, _Task())  # type: ignore[arg-type]
    assert isinstance(error, QueueBackoff)
