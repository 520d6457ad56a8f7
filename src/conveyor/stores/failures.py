"""Failed store calls, counted by kind, for whoever listens (the app's metrics).

A backend's connection reports every call that failed with a
``StoreUnavailableError`` or ``StoreRefusedError`` here, with the error's
``kind`` (``errors.STORE_ERROR_KINDS``); the app turns that into
``conveyor_store_errors_total{kind}``. The stores know nothing of Prometheus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from conveyor.errors import StoreRefusedError, StoreUnavailableError

E = TypeVar("E", bound=StoreUnavailableError | StoreRefusedError)


class StoreFailures:
    """Counts of failed calls by kind, and listeners told of each one."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._listeners: list[Callable[[str], None]] = []

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(kind)`` for every failure from now on."""
        self._listeners.append(listener)

    def record(self, error: E) -> E:
        """Count ``error`` and hand it back, to be raised: ``raise failures.record(...)``."""
        self.counts[error.kind] += 1
        for listener in self._listeners:
            listener(error.kind)
        return error
