"""The service's business metrics, on conveyor's one registry (served at ``/metrics``).

Labels are bounded: outcomes, event kinds, repository and operation names,
tiers; never an id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """Every metric the products add; one instance per process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.validations = Counter(
            "service_validations",
            "Billing validations that finished, by outcome (completed, failed).",
            ("outcome",),
            registry=registry,
        )
        self.validated_rows = Counter(
            "service_validated_rows",
            "Rows checked by billing validations, by validity (valid, invalid).",
            ("validity",),
            registry=registry,
        )
        self.exports = Counter(
            "service_exports",
            "Data exports that finished, by outcome (completed, failed, expired).",
            ("outcome",),
            registry=registry,
        )
        self.experiment_events = Counter(
            "service_experiment_events",
            "A/B events counted (kind: exposure, conversion); duplicates are not counted.",
            ("kind",),
            registry=registry,
        )
        self.analytics_events = Counter(
            "service_analytics_events",
            "Analytics events recorded.",
            registry=registry,
        )
        self.orders = Counter(
            "service_orders",
            "Order commands that committed, by command (create, process).",
            ("command",),
            registry=registry,
        )
        self.notifications = Counter(
            "service_notifications",
            "Notifications sent by the notifier group, by event type.",
            ("event",),
            registry=registry,
        )
        self.usage_flushed = Counter(
            "service_usage_flushed_requests",
            "API requests counted per key and written to the database by the usage flush.",
            registry=registry,
        )
        self.query_duration = Histogram(
            "service_db_query_duration_seconds",
            "Duration of the repositories' database calls.",
            ("repository", "operation"),
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
