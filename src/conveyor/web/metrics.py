"""HTTP metrics after OpenTelemetry's HTTP server conventions, on the app's one registry.

    http_server_request_duration_seconds      histogram, OTel buckets
    http_server_active_requests               gauge (in flight)
    http_server_request_body_size_bytes       histogram
    http_server_response_body_size_bytes      histogram

labelled ``http_request_method`` (unknown methods: ``_OTHER``), ``http_route``
(the route template; every unmatched request: ``unmatched``) and
``http_response_status_code``. The process metrics (``process_*``,
``python_info``) are registered on the same registry, since a custom registry
does not get them by default.

Several server processes (``conveyor serve --workers N``) use
prometheus_client's multiprocess mode (``observability/multiprocess.py``):
counters and histograms are written to shared files, and whichever process
answers ``/metrics`` sums them over all processes. Gauges that describe the
store (jobs by state, backlog) are read from the store by the answering
process, so they are the same whichever answers; the in-flight gauge is
summed over live processes; ``process_*`` and the cache's in-process
statistics describe the answering process.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from conveyor.app import Conveyor
from conveyor.observability.multiprocess import all_processes_text, multiprocess_dir

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""OpenTelemetry's advice for ``http.server.request.duration``."""
SIZE_BUCKETS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"
SUMMED_GAUGES = frozenset({"http_server_active_requests"})
"""Gauges that count something per process, so several processes add up."""


class _Series(NamedTuple):
    duration: Histogram
    request_size: Histogram
    response_size: Histogram


class HttpMetrics:
    """The HTTP metric families of one app's registry (one instance per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("http_request_method", "http_route", "http_response_status_code")
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.active = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            ("http_request_method",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.request_size = Histogram(
            "http_server_request_body_size_bytes",
            "Size of HTTP server request bodies.",
            labels,
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.response_size = Histogram(
            "http_server_response_body_size_bytes",
            "Size of HTTP server response bodies (as sent, after compression).",
            labels,
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._active: dict[str, Gauge] = {}

    def series(self, method: str, route: str, status: int) -> _Series:
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            values = (method, route, str(status))
            found = self._series[key] = _Series(
                self.duration.labels(*values),
                self.request_size.labels(*values),
                self.response_size.labels(*values),
            )
        return found

    def record(
        self, method: str, route: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """One finished request (``observe.py`` calls this)."""
        series = self.series(method, route, status)
        series.duration.observe(seconds)
        series.request_size.observe(received)
        series.response_size.observe(sent)

    def in_flight(self, method: str) -> Gauge:
        found = self._active.get(method)
        if found is None:
            found = self._active[method] = self.active.labels(method)
        return found


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, HttpMetrics] = (
    weakref.WeakKeyDictionary()
)


def http_metrics(app: Conveyor) -> HttpMetrics:
    """The app's HTTP metrics, registered (with the process metrics) on first use."""
    registry = app.metrics.registry
    found = _by_registry.get(registry)
    if found is None:
        found = _by_registry[registry] = HttpMetrics(registry)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return found


# -- /metrics ------------------------------------------------------------------------


async def exposition(app: Conveyor) -> bytes:
    """The app's registry in the Prometheus text format (all processes in multiprocess mode)."""
    text = await app.metrics_text()  # refreshes the store gauges in this process
    path = multiprocess_dir()
    if path is None:
        return text
    return all_processes_text(app.metrics.registry, path, SUMMED_GAUGES)
