"""Retry policy: how long to wait before the next attempt, and how long to keep a job.

The decision itself (retry, fail, complete) is made in ``outcome.py``; the
stores only apply it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


class Backoff:
    """Seconds to wait before attempt ``n + 1``, given that attempt ``n`` failed.

    >>> Backoff.exponential(base=1, factor=2, max_delay=60)(3)  # about 4 s, jittered
    >>> Backoff.fixed(5)(3)
    5.0
    >>> Backoff(lambda attempt: attempt * 10.0)(2)
    20.0
    """

    __slots__ = ("_fn", "_label")

    def __init__(self, fn: Callable[[int], float], label: str = "custom") -> None:
        self._fn = fn
        self._label = label

    def __call__(self, attempt: int) -> float:
        return max(0.0, float(self._fn(attempt)))

    def __repr__(self) -> str:
        return f"Backoff({self._label})"

    @classmethod
    def exponential(
        cls, base: float = 1.0, factor: float = 2.0, max_delay: float = 600.0, jitter: bool = True
    ) -> Backoff:
        """``base * factor ** (attempt - 1)`` capped at ``max_delay``.

        With ``jitter`` the delay is drawn uniformly from its upper half, so
        jobs that failed together do not all come back in the same instant.
        """

        def delay(attempt: int) -> float:
            d = min(max_delay, base * factor ** max(0, attempt - 1))
            return d / 2 + random.uniform(0, d / 2) if jitter else d

        return cls(delay, f"exponential base={base} factor={factor} max={max_delay}")

    @classmethod
    def fixed(cls, seconds: float) -> Backoff:
        return cls(lambda _attempt: seconds, f"fixed {seconds}s")


BackoffLike = Backoff | float | Callable[[int], float]


def as_backoff(value: BackoffLike) -> Backoff:
    if isinstance(value, Backoff):
        return value
    if isinstance(value, int | float):
        return Backoff.fixed(float(value))
    return Backoff(value)


@dataclass(frozen=True, slots=True)
class Retention:
    """How many finished jobs to keep, and for how long (seconds).

    Counts apply per queue and state; ages per job. ``None`` falls back to
    the queue's retention, then to the app's settings.
    """

    completed: int | None = None
    completed_for: float | None = None
    failed: int | None = None
    failed_for: float | None = None

    def over(self, fallback: Retention) -> Retention:
        return Retention(
            completed=fallback.completed if self.completed is None else self.completed,
            completed_for=(
                fallback.completed_for if self.completed_for is None else self.completed_for
            ),
            failed=fallback.failed if self.failed is None else self.failed,
            failed_for=fallback.failed_for if self.failed_for is None else self.failed_for,
        )
