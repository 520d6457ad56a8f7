"""Rate-limit decisions as Prometheus metrics, counted as plain integers on the hot path.

A check adds to a dict of integers (a Prometheus child's ``inc()`` takes a lock
and would be most of a local check's cost); a collector registered in the
app's registry reads them at scrape time:

- ``conveyor_ratelimit_decisions_total{policy, tier, outcome, store}``: outcome
  ``allowed`` (counted for every policy of an admitted request), ``denied``
  (for each policy that refused it) or ``unavailable`` (the shared store failed
  and the limiter fails closed); store ``shared`` or ``local`` (this process
  decided alone: a local limiter, or a fallback while the shared store is down).
- ``conveyor_ratelimit_store_failures_total``: shared checks that failed or ran
  past their budget.
- ``conveyor_ratelimit_degraded``: 1 while the shared store is skipped (its
  circuit is open), else 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DecisionKey = tuple[str, str, str, str]
"""``(policy, tier, outcome, store)``."""


class RateMetrics:
    """The counters one app's limiters add to."""

    def __init__(self) -> None:
        self.decisions: defaultdict[DecisionKey, int] = defaultdict(int)
        self.rejected: defaultdict[str, int] = defaultdict(int)
        """Requests refused, by tier label (once per request, however many policies refused
        it): the metrics history's ``ratelimit_rejected`` series."""
        self.store_failures = 0

    def history_totals(self) -> dict[tuple[str, tuple[str, ...]], int]:
        """Totals since start for the metrics history (``observability/history.py``)."""
        return {("ratelimit_rejected", (tier,)): n for tier, n in list(self.rejected.items())}


class RateMetricsCollector(Collector):
    """Exposes :class:`RateMetrics` (and whether the store is skipped) at scrape time."""

    def __init__(self, metrics: RateMetrics, degraded: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._degraded = degraded

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "conveyor_ratelimit_decisions",
            "Rate-limit decisions by policy, tier, outcome and where they were made.",
            labels=("policy", "tier", "outcome", "store"),
        )
        for labels, count in list(self._metrics.decisions.items()):
            decisions.add_metric(labels, count)
        yield decisions
        yield CounterMetricFamily(
            "conveyor_ratelimit_store_failures",
            "Shared rate-limit checks that failed or ran past their budget.",
            value=self._metrics.store_failures,
        )
        yield GaugeMetricFamily(
            "conveyor_ratelimit_degraded",
            "1 while the shared rate-limit store is skipped (its circuit is open).",
            value=1 if self._degraded() else 0,
        )
