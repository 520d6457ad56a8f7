"""The metrics history protocol: additive counters per (series, minute), kept a few days.

A series is a kind and its labels, e.g. ``("jobs_completed", ("emails",))`` or
``("job_wait_bucket", ("emails", "0.5"))``. Processes count in memory and add
their counts once per flush interval (``observability/history.py``), so a
store sees one write per process every few seconds, never one per job. A
minute's value is the sum of what every process added to it. Bucket series
use fixed edges, so summed buckets give percentiles across processes.

Every add also goes to the hour of its minute, so a window of a day or a week
reads 24 or 168 sums per series instead of 1,440 or 10,080 minutes: a read
at ``step=HOUR`` returns hours, and :meth:`MetricsHistory.totals` adds the
whole hours of a window from their sums and only its ragged ends minute by
minute (:func:`split_window`). The sweep drops minutes older than
``history_days``, and an hour's sum with the last minute of that hour.

Each backend keeps the history beside its job store, on the same connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

HOUR = 60
"""Minutes in an hour: the step of the hourly sums."""


class HistoryRow(msgspec.Struct, frozen=True, gc=False):
    """``value`` counted in ``minute`` (minutes since the Unix epoch) for one series; in an
    hourly read, ``minute`` is the hour's first and ``value`` the hour's sum."""

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


def split_window(since: int, until: int) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """The minutes ``since..until`` (inclusive) as the hours wholly inside them (first and
    last hour, None if there is none) and the minute ranges left at either end."""
    first_hour = -(-since // HOUR)
    last_hour = (until + 1) // HOUR - 1
    if first_hour > last_hour:
        return [(since, until)], None
    ends = [(since, first_hour * HOUR - 1), ((last_hour + 1) * HOUR, until)]
    return [(a, b) for a, b in ends if a <= b], (first_hour, last_hour)


def hour_kept(hour: int, before_minute: int) -> bool:
    """Whether a trim at ``before_minute`` keeps the sum of ``hour`` (it holds a minute
    at or after the cut)."""
    return hour * HOUR + HOUR - 1 >= before_minute


async def totals_from_rows(
    store: MetricsHistory, kinds: Sequence[str], since_minute: int, until_minute: int
) -> dict[tuple[str, tuple[str, ...]], int]:
    """:meth:`MetricsHistory.totals` from the store's reads: whole hours from their sums,
    the ragged ends minute by minute (a store that can sum where its rows are does better)."""
    ends, hours = split_window(since_minute, until_minute)
    rows = [row for a, b in ends for row in await store.read(kinds, a, b)]
    if hours is not None:
        rows += await store.read(kinds, hours[0] * HOUR, hours[1] * HOUR, HOUR)
    sums: dict[tuple[str, tuple[str, ...]], int] = {}
    for row in rows:
        series = (row.kind, row.labels)
        sums[series] = sums.get(series, 0) + row.value
    return sums


class MetricsHistory(Protocol):
    """What the history needs of a store. Every method is one atomic step."""

    async def add(self, rows: Sequence[HistoryRow]) -> None:
        """Add each row's value to its series' minute and hour (rows may repeat one)."""
        ...

    async def read(
        self, kinds: Sequence[str], since_minute: int, until_minute: int, step: int = 1
    ) -> list[HistoryRow]:
        """Every stored row of ``kinds`` whose minute (``step=1``) or hour (``step=HOUR``:
        the hours that start in the window) is within ``since_minute..until_minute``,
        by kind, minute and labels."""
        ...

    async def totals(
        self, kinds: Sequence[str], since_minute: int, until_minute: int
    ) -> dict[tuple[str, tuple[str, ...]], int]:
        """Per series of ``kinds``, the sum of its minutes ``since_minute..until_minute``
        (whole hours from their sums: what a percentile or a total over a window needs)."""
        ...

    async def trim(self, before_minute: int) -> int:
        """Drop every minute before ``before_minute`` and every hour that ends before it;
        how many minute rows went."""
        ...
