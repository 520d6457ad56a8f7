"""``app.history``: minute-by-minute counts kept in the store, for charts without Prometheus.

Nothing is written per job. Components keep their own running totals (the
job metrics' Prometheus counters and histograms, the rate limiter's plain
integers); each registers a *source* that returns them. Every
``history_flush_seconds`` (and when a worker stops) :meth:`HistoryClient.flush`
adds what grew since the last flush to the current minute, for every series,
in one store call. So a store sees one write per process per flush, and a
minute's value is the sum over every process that counted in it.

Series (kind, labels):

- ``jobs_completed`` / ``jobs_failed`` / ``jobs_retried`` (queue): outcomes;
- ``job_wait_bucket`` / ``job_run_bucket`` (queue, le): how many jobs waited
  (from due to claimed) or ran for at most ``le`` seconds and more than the
  edge below (the Prometheus histograms' fixed edges, ``+Inf`` last), so
  percentiles over any window and any set of processes come from summed
  buckets (:func:`quantile`);
- ``ratelimit_rejected`` (tier): requests a rate limit refused.

Minutes older than ``history_days`` are dropped by the workers' sweep.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from conveyor.clock import Clock
from conveyor.config import Settings
from conveyor.errors import BadInputError
from conveyor.observability.logging import get_logger
from conveyor.observability.metrics import RUN_BUCKETS, WAIT_BUCKETS
from conveyor.stores.history import HOUR, HistoryRow, MetricsHistory

log = get_logger("conveyor.history")

JOBS_COMPLETED = "jobs_completed"
JOBS_FAILED = "jobs_failed"
JOBS_RETRIED = "jobs_retried"
JOB_WAIT_BUCKET = "job_wait_bucket"
JOB_RUN_BUCKET = "job_run_bucket"
RATELIMIT_REJECTED = "ratelimit_rejected"
KINDS = (
    JOBS_COMPLETED,
    JOBS_FAILED,
    JOBS_RETRIED,
    JOB_WAIT_BUCKET,
    JOB_RUN_BUCKET,
    RATELIMIT_REJECTED,
)

_BUCKETS = {"wait": (JOB_WAIT_BUCKET, WAIT_BUCKETS), "run": (JOB_RUN_BUCKET, RUN_BUCKETS)}
MINUTE_MS = 60_000
Series = tuple[str, tuple[str, ...]]
Source = Callable[[], Mapping[Series, int]]
"""Running totals since the process started, per series; they only grow."""


@dataclass(frozen=True, slots=True)
class HistorySeries:
    """One kind of count, step by step: ``values[labels][i]`` is the count of the
    ``i``-th step from ``start`` (``step`` minutes each: 1, or 60 for hours; 0 where
    nothing was counted)."""

    kind: str
    start: datetime
    step: int
    points: int
    values: dict[tuple[str, ...], list[int]]


class HistoryClient:
    """``app.history``: the metrics history of one store."""

    def __init__(
        self,
        store: MetricsHistory,
        clock: Clock,
        settings: Settings,
        opener: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_seconds = settings.history_flush_seconds
        self.keep_minutes = math.ceil(settings.history_days * 1440)
        self._open = opener
        self._sources: list[Source] = []
        self._sent: dict[Series, int] = {}
        self._trimmed_at: int | None = None

    def add_source(self, source: Source) -> None:
        """Count ``source``'s totals into the history from the next flush on."""
        self._sources.append(source)

    # -- writing -------------------------------------------------------------------

    async def flush(self) -> int:
        """Add what every source counted since the last flush to the current minute;
        returns how many series grew. Kept for the next flush if the store fails."""
        minute = self.clock.now_ms() // MINUTE_MS
        totals: dict[Series, int] = defaultdict(int)
        for source in self._sources:
            for series, total in source().items():
                totals[series] += total
        grown = {s: t - self._sent.get(s, 0) for s, t in totals.items()}
        rows = [HistoryRow(kind, labels, minute, n) for (kind, labels), n in grown.items() if n > 0]
        if rows:
            await self._open()
            await self.store.add(rows)
        self._sent.update(totals)
        return len(rows)

    async def run(self, halt: asyncio.Event) -> None:
        """Flush every ``history_flush_seconds`` until ``halt`` is set, then once more."""
        while True:
            await self.clock.sleep_or_wake(halt, self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # the store is down: the counts wait for the next flush
                log.warning("history flush failed", error=f"{type(exc).__name__}: {exc}")
            if halt.is_set():
                return

    async def trim(self) -> int:
        """Drop minutes older than ``history_days`` (at most once a minute per process)."""
        minute = self.clock.now_ms() // MINUTE_MS
        if self._trimmed_at == minute:
            return 0
        await self._open()
        dropped = await self.store.trim(minute - self.keep_minutes)
        self._trimmed_at = minute
        return dropped

    # -- reading -------------------------------------------------------------------

    async def read(self, kinds: Sequence[str], minutes: int = 60) -> list[HistoryRow]:
        """The stored rows of ``kinds`` for the last ``minutes`` minutes (this one included)."""
        last = self.clock.now_ms() // MINUTE_MS
        first = last - self._window(minutes) + 1
        await self._open()
        return await self.store.read(list(kinds), first, last)

    async def totals(self, kinds: Sequence[str], minutes: int = 60) -> dict[Series, int]:
        """Per series of ``kinds``, its sum over the last ``minutes`` minutes.

        >>> await app.history.totals(["jobs_failed"], minutes=1440)
        {('jobs_failed', ('emails',)): 12}
        """
        last = self.clock.now_ms() // MINUTE_MS
        await self._open()
        return await self.store.totals(list(kinds), last - self._window(minutes) + 1, last)

    async def series(self, kind: str, minutes: int = 60, step: int = 1) -> HistorySeries:
        """One kind's counts over the last ``minutes`` minutes, per labels, minute by minute
        (``step=60``: hour by hour, the current hour last; ``minutes`` then a multiple of 60).

        >>> done = await app.history.series("jobs_completed", minutes=60)
        >>> done.values[("emails",)][-1]     # completed in the current minute
        >>> week = await app.history.series("jobs_failed", minutes=7 * 1440, step=60)
        """
        minutes = self._window(minutes)
        if step not in (1, HOUR) or minutes % step:
            raise BadInputError(f"step is 1 or 60 minutes, and divides minutes, got {step!r}")
        points = minutes // step
        last = self.clock.now_ms() // MINUTE_MS // step * step
        first = last - (points - 1) * step
        await self._open()
        values: dict[tuple[str, ...], list[int]] = {}
        for row in await self.store.read([kind], first, last, step):
            values.setdefault(row.labels, [0] * points)[(row.minute - first) // step] += row.value
        return HistorySeries(kind, datetime.fromtimestamp(first * 60, UTC), step, points, values)

    async def percentiles(
        self,
        of: Literal["wait", "run"],
        *,
        queue: str | None = None,
        minutes: int = 60,
        quantiles: Iterable[float] = (0.5, 0.95),
    ) -> dict[float, float | None]:
        """Job wait (due to claimed) or run time percentiles, in seconds, over the last
        ``minutes`` minutes of every process (of ``queue``, or of all); None without data.

        >>> await app.history.percentiles("wait", queue="emails")
        {0.5: 0.0075, 0.95: 0.045}
        """
        if of not in ("wait", "run"):
            raise BadInputError(f"percentiles are of 'wait' or 'run', got {of!r}")
        kind, edges = _BUCKETS[of]
        counts: dict[float, int] = defaultdict(int)
        for (_, labels), n in (await self.totals([kind], minutes)).items():
            if queue is None or labels[0] == queue:
                counts[float(labels[1])] += n
        return {q: quantile(counts, q, edges) for q in quantiles}

    def _window(self, minutes: int) -> int:
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise BadInputError(f"minutes must be an integer, got {minutes!r}")
        if not 0 < minutes <= self.keep_minutes:
            raise BadInputError(f"minutes must be 1..{self.keep_minutes} (history_days)")
        return minutes


def quantile(counts: Mapping[float, int], q: float, edges: Sequence[float]) -> float | None:
    """The ``q`` quantile of counts per bucket (upper edge -> how many fell above the edge
    before it in ``edges``, up to this one), interpolated linearly inside its bucket as
    Prometheus' ``histogram_quantile`` does; the highest finite edge when it falls in the
    ``+Inf`` bucket, None when nothing was counted."""
    if not 0 <= q <= 1:
        raise BadInputError(f"a quantile is in 0..1, got {q!r}")
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    below, lower = 0, 0.0
    for edge in [*sorted(edges), math.inf]:
        count = counts.get(edge, 0)
        if count > 0 and below + count >= rank:
            return lower if math.isinf(edge) else lower + (edge - lower) * (rank - below) / count
        below += count
        if not math.isinf(edge):
            lower = edge
    return lower
