"""Alerts as code: Prometheus alerting rules and a Grafana dashboard from the app's metrics.

Both are built from the metric families an app registers (``app.metrics.registry``,
with the cache, the event bus and the rate limiter in it): every name an
expression uses is looked up there first, so a renamed metric fails the
generation (and its test) instead of leaving a rule that never fires.
``conveyor observability rules|grafana`` prints them.

Rules (thresholds in :class:`Thresholds`):

    ConveyorJobFailureRate        failed / finished of a queue over 5 m above a share
    ConveyorQueueBacklogAge       the oldest waiting job of a queue older than N seconds
    ConveyorDeadLetterGrowth      a subscriber group dead-lettered deliveries in 15 m
    ConveyorCacheHitRatioDrop     a namespace's hit ratio fell well below an hour ago's
    ConveyorRateLimitRejectionSpike  a tier's refusals several times the last hour's rate
    ConveyorWorkerGone            fewer workers heartbeat than in the last 15 minutes
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conveyor.errors import ProgrammingError


@dataclass(frozen=True, slots=True)
class Thresholds:
    failure_ratio: float = 0.05
    """Share of a queue's finished jobs that failed (over 5 minutes)."""
    backlog_seconds: float = 300.0
    """Age of a queue's oldest waiting job."""
    hit_ratio_drop: float = 0.8
    """A namespace's hit ratio below this share of its ratio an hour ago."""
    rejection_spike: float = 3.0
    """A tier's refusals per second this many times its last hour's."""


class MetricNames:
    """The families an app registered, by name and type; ``counter("x")`` is ``x_total``."""

    def __init__(self, families: Iterable[tuple[str, str]]) -> None:
        self.types = dict(families)

    def _get(self, name: str, kind: str) -> str:
        found = self.types.get(name)
        if found != kind:
            raise ProgrammingError(f"the app registers no {kind} named {name!r} (found {found})")
        return name

    def counter(self, name: str) -> str:
        return self._get(name, "counter") + "_total"

    def gauge(self, name: str) -> str:
        return self._get(name, "gauge")

    def histogram(self, name: str) -> str:
        return self._get(name, "histogram") + "_bucket"


def _ratio(part: str, whole: str) -> str:
    return f"({part}) / clamp_min({whole}, 1e-9)"


def alerting_rules(names: MetricNames, limits: Thresholds | None = None) -> dict[str, Any]:
    """A Prometheus rule file (as data: write it as YAML or JSON, which is YAML too)."""
    t = limits or Thresholds()
    failed = f"sum by (queue) (rate({names.counter('conveyor_jobs_failed')}[5m]))"
    done = f"sum by (queue) (rate({names.counter('conveyor_jobs_completed')}[5m]))"
    hit, miss = names.counter("conveyor_cache_hits"), names.counter("conveyor_cache_misses")
    hits = f"sum by (namespace) (rate({hit}[10m]))"
    misses = f"sum by (namespace) (rate({miss}[10m]))"
    hits_before = f"sum by (namespace) (rate({hit}[10m] offset 1h))"
    misses_before = f"sum by (namespace) (rate({miss}[10m] offset 1h))"
    hit_ratio = _ratio(hits, f"{hits} + {misses}")
    hit_ratio_before = _ratio(hits_before, f"{hits_before} + {misses_before}")
    decisions = names.counter("conveyor_ratelimit_decisions")
    denied = f'sum by (tier) (rate({decisions}{{outcome="denied"}}[5m]))'
    denied_before = f'sum by (tier) (rate({decisions}{{outcome="denied"}}[1h] offset 5m))'
    workers = names.gauge("conveyor_workers")
    rules = [
        _rule(
            "ConveyorJobFailureRate",
            f"{_ratio(failed, f'{failed} + {done}')} > {t.failure_ratio}",
            "10m",
            "warning",
            "Queue {{ $labels.queue }}: {{ $value | humanizePercentage }} of jobs fail",
            "More than a share of the queue's finished jobs failed for good over 5 minutes.",
        ),
        _rule(
            "ConveyorQueueBacklogAge",
            f"max by (queue) ({names.gauge('conveyor_queue_oldest_waiting_seconds')})"
            f" > {t.backlog_seconds:g}",
            "5m",
            "warning",
            "Queue {{ $labels.queue }}: oldest waiting job is {{ $value | humanizeDuration }} old",
            "Jobs wait longer than they should: too few workers, a paused queue, a limit.",
        ),
        _rule(
            "ConveyorDeadLetterGrowth",
            f"sum by (group) (increase({names.counter('conveyor_events_dead_lettered')}[15m])) > 0",
            "0m",
            "warning",
            "Group {{ $labels.group }}: {{ $value }} deliveries dead-lettered in 15 minutes",
            "Inspect and replay them on the dashboard (Dead letters).",
        ),
        _rule(
            "ConveyorCacheHitRatioDrop",
            f"({hit_ratio}) < {t.hit_ratio_drop} * ({hit_ratio_before})"
            f" and ({hits} + {misses}) > 1",
            "15m",
            "info",
            "Cache namespace {{ $labels.namespace }}: hit ratio fell to {{ $value }}",
            "The namespace's hit ratio is well below an hour ago's (evictions, a new key shape,"
            " an invalidation storm).",
        ),
        _rule(
            "ConveyorRateLimitRejectionSpike",
            f"{denied} > {t.rejection_spike:g} * {denied_before} and {denied} > 1",
            "5m",
            "info",
            "Tier {{ $labels.tier }}: {{ $value }} rate-limit refusals a second",
            "Refusals are several times the last hour's rate: a client in a loop, an attack,"
            " or a limit set too low.",
        ),
        _rule(
            "ConveyorWorkerGone",
            f"max_over_time({workers}[15m]) - {workers} > 0",
            "5m",
            "warning",
            "{{ $value }} worker(s) stopped heartbeating",
            "A worker process died or lost the store; its jobs come back after their lease.",
        ),
    ]
    return {"groups": [{"name": "conveyor", "rules": rules}]}


def _rule(
    name: str, expr: str, wait: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": wait,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def grafana_dashboard(names: MetricNames, title: str = "conveyor") -> dict[str, Any]:
    """A Grafana dashboard (JSON model) over the same metrics; import it and pick the
    Prometheus data source."""
    done = names.counter("conveyor_jobs_completed")
    failed = names.counter("conveyor_jobs_failed")
    wait = names.histogram("conveyor_job_wait_seconds")
    run = names.histogram("conveyor_job_run_seconds")
    hits, misses = names.counter("conveyor_cache_hits"), names.counter("conveyor_cache_misses")
    http = names.histogram("http_server_request_duration_seconds")
    panels = [
        ("Jobs completed /s by queue", f"sum by (queue) (rate({done}[5m]))", "ops"),
        ("Jobs failed /s by queue", f"sum by (queue) (rate({failed}[5m]))", "ops"),
        (
            "Oldest waiting job by queue",
            f"max by (queue) ({names.gauge('conveyor_queue_oldest_waiting_seconds')})",
            "s",
        ),
        ("Jobs by state", f"sum by (state) ({names.gauge('conveyor_jobs')})", "short"),
        (
            "Wait time p95 by queue",
            f"histogram_quantile(0.95, sum by (queue, le) (rate({wait}[5m])))",
            "s",
        ),
        (
            "Run time p95 by queue",
            f"histogram_quantile(0.95, sum by (queue, le) (rate({run}[5m])))",
            "s",
        ),
        ("Workers", names.gauge("conveyor_workers"), "short"),
        (
            "Event backlog by group",
            f"sum by (group) ({names.gauge('conveyor_events_backlog')})",
            "short",
        ),
        (
            "Dead-lettered /s by group",
            f"sum by (group) (rate({names.counter('conveyor_events_dead_lettered')}[5m]))",
            "ops",
        ),
        (
            "Cache hit ratio by namespace",
            _ratio(
                f"sum by (namespace) (rate({hits}[5m]))",
                f"sum by (namespace) (rate({hits}[5m])) + sum by (namespace) (rate({misses}[5m]))",
            ),
            "percentunit",
        ),
        (
            "Rate-limit decisions /s by outcome and tier",
            f"sum by (outcome, tier) (rate({names.counter('conveyor_ratelimit_decisions')}[5m]))",
            "ops",
        ),
        (
            "HTTP p95 by route",
            f"histogram_quantile(0.95, sum by (http_route, le) (rate({http}[5m])))",
            "s",
        ),
    ]
    return {
        "title": title,
        "uid": "conveyor",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["conveyor"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": panel_title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": "A",
                        "expr": expr,
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    }
                ],
            }
            for i, (panel_title, expr, unit) in enumerate(panels)
        ],
    }
