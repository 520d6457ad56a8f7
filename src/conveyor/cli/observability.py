"""``conveyor observability rules|grafana``: alerting rules and a dashboard for Prometheus.

Both read the metric names from an app's own registry, with every component
that reports into it (jobs, cache, event bus, rate limits, the HTTP layer's
families when the web layer is installed), so they always name what the app
exports (``observability/alerts.py``).
"""

from __future__ import annotations

import json

import click

from conveyor.app import Conveyor
from conveyor.observability.alerts import MetricNames, Thresholds, alerting_rules, grafana_dashboard


def metric_names() -> MetricNames:
    """The metric families of an app with every component built (none connects)."""
    app = Conveyor("memory://", configure_logging=False)
    # Build each component that registers metric families, so the registry holds them all.
    _ = app.cache, app.events, app.rate_limits
    from conveyor.web.metrics import http_metrics  # the web layer's, only when asked

    http_metrics(app)
    return MetricNames((f.name, f.type) for f in app.metrics.registry.collect())


@click.group()
def observability() -> None:
    """Alerting rules and a Grafana dashboard from the metrics conveyor exports."""


@observability.command()
@click.option("--failure-ratio", default=0.05, show_default=True, type=click.FloatRange(0, 1))
@click.option("--backlog-seconds", default=300.0, show_default=True, type=click.FloatRange(0))
def rules(failure_ratio: float, backlog_seconds: float) -> None:
    """Print Prometheus alerting rules (YAML; check them with `promtool check rules`)."""
    limits = Thresholds(failure_ratio=failure_ratio, backlog_seconds=backlog_seconds)
    # JSON is YAML: promtool and Prometheus read it as a rule file.
    click.echo(json.dumps(alerting_rules(metric_names(), limits), indent=2))


@observability.command()
@click.option("--title", default="conveyor", show_default=True)
def grafana(title: str) -> None:
    """Print a Grafana dashboard (JSON; import it and pick the Prometheus data source)."""
    click.echo(json.dumps(grafana_dashboard(metric_names(), title), indent=2))
