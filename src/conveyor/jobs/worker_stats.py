"""What a worker did: counts of its outcomes (``worker.run()`` returns them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class WorkerStats:
    """What one ``worker.run()`` did."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    lost: int = 0
    released: int = 0

    @property
    def processed(self) -> int:
        return self.completed + self.failed + self.retried + self.cancelled

    def fields(self) -> dict[str, int]:
        """The counts, for a log line."""
        return {
            "completed": self.completed,
            "failed": self.failed,
            "retried": self.retried,
            "cancelled": self.cancelled,
            "lost": self.lost,
            "released": self.released,
        }
