"""The cache's counters as Prometheus families, read when the app's registry is scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from conveyor.cache.cache import Cache

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


class CacheCollector(Collector):
    """Exports a cache's counters into an app's registry."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self._cache
        ns = ("namespace",)
        counters = {
            "hits": ("Cache hits by tier.", ("namespace", "tier")),
            "misses": ("Cache misses.", ns),
            "stale": ("Stale values served.", ns),
            "sets": ("Values written.", ns),
            "computations": ("Factory runs.", ns),
        }
        families = {
            name: CounterMetricFamily(f"conveyor_cache_{name}", doc, labels=labels)
            for name, (doc, labels) in counters.items()
        }
        ratio = GaugeMetricFamily("conveyor_cache_hit_ratio", "Hits / lookups.", labels=ns)
        for name, s in cache.stats_by_namespace().items():
            families["hits"].add_metric([name, "local"], s.local_hits)
            families["hits"].add_metric([name, "shared"], s.shared_hits)
            families["misses"].add_metric([name], s.misses)
            families["stale"].add_metric([name], s.stale)
            families["sets"].add_metric([name], s.sets)
            families["computations"].add_metric([name], s.computations)
            ratio.add_metric([name], s.hit_rate)
        yield from families.values()
        yield ratio
        local = cache.local
        yield GaugeMetricFamily(
            "conveyor_cache_local_entries", "Entries in the local tier.", value=len(local)
        )
        yield GaugeMetricFamily(
            "conveyor_cache_local_bytes", "Bytes held by the local tier.", value=local.bytes
        )
        yield CounterMetricFamily(
            "conveyor_cache_local_evictions",
            "Entries evicted by the bounds.",
            value=local.evictions,
        )
        shared = cache.shared_stats
        yield CounterMetricFamily(
            "conveyor_cache_shared_errors",
            "Shared-tier calls that failed or ran past the budget.",
            value=shared.errors,
        )
        yield GaugeMetricFamily(
            "conveyor_cache_circuit_open",
            "1 while the circuit breaker keeps calls away from the shared tier.",
            value=1 if cache.breaker.is_open else 0,
        )
