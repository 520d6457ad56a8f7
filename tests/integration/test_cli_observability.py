"""``conveyor observability rules|grafana``: promtool accepts the rules, and they fire."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli import cli
from conveyor.cli.observability import metric_names
from conveyor.errors import ProgrammingError
from conveyor.observability.alerts import MetricNames, alerting_rules

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) missing")


def generated(*args: str) -> str:
    result = CliRunner().invoke(cli, ["observability", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_promtool_check_rules_passes_on_the_generated_rules(tmp_path: Path) -> None:
    rules = tmp_path / "conveyor.rules.yml"
    rules.write_text(generated("rules", "--backlog-seconds", "120"))
    run = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 6 rules found" in run.stdout


def test_the_rules_fire_on_a_backlog_and_on_a_worker_gone(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(generated("rules"))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'conveyor_queue_oldest_waiting_seconds{queue="emails"}',
                        "values": "0 100 400 460 520 580 640 700 760 820",
                    },
                    {"series": "conveyor_workers", "values": "2 2 2 1 1 1 1 1 1 1 1"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "9m",
                        "alertname": "ConveyorQueueBacklogAge",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "queue": "emails"},
                                "exp_annotations": {
                                    "summary": "Queue emails: oldest waiting job is 13m 40s old",
                                    "description": "Jobs wait longer than they should: too"
                                    " few workers, a paused queue, a limit.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "2m", "alertname": "ConveyorWorkerGone", "exp_alerts": []},
                    {
                        "eval_time": "9m",
                        "alertname": "ConveyorWorkerGone",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "1 worker(s) stopped heartbeating",
                                    "description": "A worker process died or lost the store;"
                                    " its jobs come back after their lease.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(json.dumps(test))
    run = subprocess.run(
        [str(PROMTOOL), "test", "rules", "test.yml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_dashboard_names_only_metrics_the_app_exports() -> None:
    dashboard = json.loads(generated("grafana"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {
        re.sub(r"_(total|bucket)$", "", name)
        for expr in exprs
        for name in re.findall(r"\b((?:conveyor|http)_[a-z_]+)(?=[\[{)]|$)", expr)
    }
    names = set(metric_names().types)
    assert {
        "conveyor_jobs_completed",
        "conveyor_workers",
        "http_server_request_duration_seconds",
    } <= used
    assert used <= names, used - names
    assert len(dashboard["panels"]) >= 10


def test_a_metric_the_app_does_not_export_stops_the_generation() -> None:
    exported = metric_names().types
    without_workers = MetricNames((n, k) for n, k in exported.items() if n != "conveyor_workers")
    with pytest.raises(ProgrammingError, match="conveyor_workers"):
        alerting_rules(without_workers)
