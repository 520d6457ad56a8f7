"""The metrics history protocol: additive counters per (series, minute), kept a few days.

A series is a kind and its labels, e.g. ``("jobs_completed", ("emails",))`` or
``("job_wait_bucket", ("emails", "0.5"))``. Processes count in memory and add
their counts once per flush interval (``observability/history.py``), so a
store sees one write per process every few seconds, never one per job. A
minute's value is the sum of what every process added to it. Bucket series
use fixed edges, so summed buckets give percentiles across processes.

Each backend keeps the history beside its job store, on the same connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec


class HistoryRow(msgspec.Struct, frozen=True, gc=False):
    """``value`` counted in ``minute`` (minutes since the Unix epoch) for one series."""

    kind: str
    labels: tuple[str, ...]
    minute: int
    value: int


LABEL_SEPARATOR = "\x1f"
"""Between the labels of a series where a store keeps them as one string."""


def join_labels(labels: Sequence[str]) -> str:
    return LABEL_SEPARATOR.join(labels)


def split_labels(text: str) -> tuple[str, ...]:
    return tuple(text.split(LABEL_SEPARATOR)) if text else ()


class MetricsHistory(Protocol):
    """What the history needs of a store. Every method is one atomic step."""

    async def add(self, rows: Sequence[HistoryRow]) -> None:
        """Add each row's value to its series' minute (rows may repeat a series-minute)."""
        ...

    async def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> list[HistoryRow]:
        """Every stored row of ``kinds`` with ``since_minute <= minute <= until_minute``,
        by kind, minute and labels."""
        ...

    async def trim(self, before_minute: int) -> int:
        """Drop every minute before ``before_minute``; how many rows went."""
        ...
