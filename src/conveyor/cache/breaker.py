"""A circuit breaker in front of the shared tier.

Closed: calls go through. After ``threshold`` failures in a row it opens:
calls are not sent at all (the cache answers from the local tier) until the
open period ends. Then one call at a time is let through as a probe
(half-open); a success closes the circuit, a failure opens it again for
twice as long (with jitter), up to ``max_open``. ``allow()`` is on every
shared call, so its closed path is one comparison.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = 3,
        base_open: float = 0.05,
        max_open: float = 0.5,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.base_open = base_open
        self.max_open = max_open
        self.on_close = on_close
        self.failures = 0
        self.opened = 0
        """How many times the circuit has opened."""
        self._open_until = 0.0
        self._period = base_open
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    def allow(self) -> bool:
        """May a call be sent now? (At most one probe at a time while open.)"""
        if self.failures < self.threshold:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if self.failures == 0:
            return
        was_open = self.failures >= self.threshold
        self.failures = 0
        self._probing = False
        self._period = self.base_open
        if was_open and self.on_close is not None:
            self.on_close()

    def abandon(self) -> None:
        """A call ended without an answer either way (cancelled): free the probe slot."""
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.failures < self.threshold:
            return
        if self.failures == self.threshold:
            self.opened += 1
        jitter = random.uniform(0.8, 1.2)
        self._open_until = time.monotonic() + self._period * jitter
        self._period = min(self._period * 2, self.max_open)
