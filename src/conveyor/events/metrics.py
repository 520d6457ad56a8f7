"""Event bus metrics: published, delivered, retried, dead-lettered, duration, backlog."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from conveyor.stores.base import JobState

HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BACKLOG_STATES = (JobState.WAITING, JobState.SCHEDULED, JobState.ACTIVE)


class EventMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        both = ("group", "type")
        self.published = Counter(
            "conveyor_events_published", "Events published.", ("type",), registry=registry
        )
        self.unrouted = Counter(
            "conveyor_events_unrouted",
            "Events published while no group subscribed to their type.",
            ("type",),
            registry=registry,
        )
        self.delivered = Counter(
            "conveyor_events_delivered", "Events handled by a group.", both, registry=registry
        )
        self.retried = Counter(
            "conveyor_events_retried",
            "Handler attempts that failed and will be retried.",
            both,
            registry=registry,
        )
        self.dead_lettered = Counter(
            "conveyor_events_dead_lettered",
            "Deliveries that failed their last attempt.",
            both,
            registry=registry,
        )
        self.duration = Histogram(
            "conveyor_event_handler_seconds",
            "Time a handler attempt ran.",
            both,
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.backlog = Gauge(
            "conveyor_events_backlog",
            "Deliveries of each group not yet handled (waiting, scheduled or running).",
            ("group",),
            registry=registry,
        )

    def refresh(self, counts: dict[str, dict[JobState, int]], prefix: str) -> None:
        """Set each group's backlog from the job counts of its queue."""
        for queue, by_state in counts.items():
            if queue.startswith(prefix):
                backlog = sum(by_state.get(state, 0) for state in BACKLOG_STATES)
                self.backlog.labels(queue[len(prefix) :]).set(backlog)
