"""Admin commands read a store that exists: they never create one, and say which they looked for."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.test_cli import APP, APP_MODULE, Cli, assert_one_error_line

ADMIN_COMMANDS = [  # at least one of each command module
    ("jobs", "list"),
    ("jobs", "wait", "some-id", "--timeout", "1"),
    ("queues",),
    ("queues", "pause", "default"),
    ("queues", "limit", "default", "--concurrency", "2"),
    ("events", "tail", "--count", "1"),
    ("events", "dlq", "list"),
    ("schedules", "list"),
]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "elsewhere").mkdir()
    return Cli(tmp_path / "elsewhere", f"sqlite:///{tmp_path / 'project' / 'jobs.db'}")


def files_under(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_an_admin_command_run_elsewhere_creates_no_store_and_names_the_one_it_sought(
    cli: Cli, command: tuple[str, ...]
) -> None:
    proc = cli(*command, code=1)
    expected = cli.cwd / ".conveyor" / "conveyor.db"
    assert_one_error_line(proc, str(expected), "the default", "never create", "--url", "--app")
    assert files_under(cli.cwd) == []  # no .conveyor/ appeared


def test_a_store_url_in_a_missing_directory_creates_no_directory(cli: Cli) -> None:
    missing = cli.cwd / "nonexistent" / "dir" / "x.db"
    cli.env["CONVEYOR_URL"] = f"sqlite:///{missing}"
    proc = cli("jobs", "list", code=1)
    assert_one_error_line(proc, str(missing), "from CONVEYOR_URL", "never create")
    assert not (cli.cwd / "nonexistent").exists()


def test_an_app_whose_store_does_not_exist_yet_is_refused_naming_the_app(cli: Cli) -> None:
    project = Path(cli.url.removeprefix("sqlite:///")).parent
    project.mkdir()
    (project / "cli_app.py").write_text(APP_MODULE.format(url=cli.url))
    proc = subprocess.run(
        cli.command("queues", "--app", APP),
        cwd=project,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_one_error_line(proc, str(project / "jobs.db"), f"--app {APP}", "never create")
    assert files_under(project) == [project / "cli_app.py"]


def test_a_memory_store_has_nothing_for_an_admin_command_to_read(cli: Cli) -> None:
    proc = cli("jobs", "list", "--url", "memory://", code=1)
    assert_one_error_line(proc, "memory://", "inside one process")


def test_the_store_a_worker_created_is_found_by_the_admin_commands(cli: Cli) -> None:
    project = Path(cli.url.removeprefix("sqlite:///")).parent
    project.mkdir()
    (project / "cli_app.py").write_text(APP_MODULE.format(url=cli.url))
    cli.cwd = project
    cli("enqueue", APP, "add", "--args", "[1, 2]")  # a producer may create its store
    assert cli.waiting() == 1
