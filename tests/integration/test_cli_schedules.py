"""``conveyor schedules list | add | remove``, run for real against a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import APP, APP_MODULE, Cli, assert_one_error_line


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    (tmp_path / "cli_app.py").write_text(APP_MODULE.format(url=url))
    cli = Cli(tmp_path, url)
    cli.env["COLUMNS"] = "160"  # room for the table's columns without wrapping
    return cli


def test_add_list_and_remove_a_schedule(cli: Cli) -> None:
    added = cli("schedules", "add", APP, "add", "--args", "[1, 2]", "--every", "3600")
    assert added.stdout.startswith("schedule cli_app.add (every 3600s) next fires at ")
    cli(
        "schedules",
        *("add", APP, "greet", "--kwargs", '{"name": "ada"}', "--name", "morning"),
        *("--cron", "0 9 * * 1-5", "--tz", "Europe/Paris", "--missed", "run_once"),
    )

    listed = cli.json("schedules", "list")
    assert [s["name"] for s in listed] == ["cli_app.add", "morning"]
    hourly, morning = listed
    assert (hourly["every"], hourly["args"], hourly["cron"]) == (3600.0, [1, 2], None)
    assert (morning["cron"], morning["tz"], morning["missed"]) == (
        "0 9 * * 1-5",
        "Europe/Paris",
        "run_once",
    )
    assert morning["kwargs"] == {"name": "ada"}
    table = cli.admin("schedules", "list").stdout
    assert "every 3600s" in table and "0 9 * * 1-5 (Europe/Paris)" in table

    assert cli.admin("schedules", "remove", "morning").stdout.strip() == "schedule morning removed"
    assert [s["name"] for s in cli.json("schedules", "list")] == ["cli_app.add"]
    assert_one_error_line(cli.admin("schedules", "remove", "morning", code=1), "no schedule")


def test_bad_schedules_are_one_error_line_and_write_nothing(cli: Cli) -> None:
    bad_cron = cli(
        "schedules", "add", APP, "add", "--args", "[1, 2]", "--cron", "61 * * * *", code=1
    )
    assert_one_error_line(bad_cron, "invalid cron expression")
    bad_zone = cli(
        "schedules", "add", APP, "greet", "--args", '["x"]', "--cron", "* * * * *",
        "--tz", "Nowhere/Special", code=1,
    )  # fmt: skip
    assert_one_error_line(bad_zone, "unknown time zone")
    bad_args = cli("schedules", "add", APP, "add", "--every", "5", code=1)
    assert_one_error_line(bad_args, "add")
    neither = cli("schedules", "add", APP, "explode", code=1)
    assert_one_error_line(neither, "exactly one of")
    assert cli.admin("schedules", "list").stdout.strip() == "no schedules"
