"""Cache statistics: plain counters on the hot path, Prometheus families when scraped.

A hit costs one integer increment (a ``prometheus_client`` counter takes a
lock and costs about a microsecond, which would double a local hit). The
collector (``collector.py``) reads the counters at scrape time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class NamespaceStats:
    """Counters of one namespace; ``hit_rate`` is hits / (hits + misses)."""

    local_hits: int = 0
    shared_hits: int = 0
    misses: int = 0
    stale: int = 0
    """Stale values served (stale-while-revalidate, soft timeouts, outages)."""
    sets: int = 0
    deletes: int = 0
    computations: int = 0
    """Factory runs (get_or_set and @cached misses and refreshes)."""
    early_refreshes: int = 0

    @property
    def hits(self) -> int:
        return self.local_hits + self.shared_hits + self.stale

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "hits": self.hits, "hit_rate": self.hit_rate}


@dataclass(slots=True)
class SharedStats:
    """How the shared tier has been doing."""

    errors: int = 0
    """Calls that failed or ran past the budget (each served from the local tier)."""
    skipped: int = 0
    """Calls not sent because the circuit was open."""
    replayed_invalidations: int = 0
