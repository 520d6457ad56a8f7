"""How the ``conveyor`` command line fails: one line, and a traceback only when asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.test_cli import Cli, assert_one_error_line
from tests.redis_servers import free_port

BROKEN_APP = """
from conveyor import Conveyor

app = Conveyor({url!r})
raise RuntimeError("the settings file\\nis missing password=hunter2")
"""

DUPLICATE_TASK_APP = """
from conveyor import Conveyor

app = Conveyor({url!r})


@app.task(name="report")
def first() -> None: ...


@app.task(name="report")
def second() -> None: ...
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    (tmp_path / "broken_app.py").write_text(BROKEN_APP.format(url=url))
    (tmp_path / "duplicate_app.py").write_text(DUPLICATE_TASK_APP.format(url=url))
    return Cli(tmp_path, url)


def assert_unexpected_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """One ``error:`` line naming the exception, then one line on how to see its traceback."""
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    error, hint = proc.stderr.splitlines()
    assert error.startswith("error: ")
    for fragment in fragments:
        assert fragment in error
    assert "--debug" in hint and "CONVEYOR_DEBUG=1" in hint


def test_an_unforeseen_exception_is_one_line_and_a_hint_to_rerun_with_debug(cli: Cli) -> None:
    proc = cli("worker", "broken_app:app", code=1)
    assert_unexpected_error(proc, "RuntimeError", "the settings file is missing")
    assert "hunter2" not in proc.stderr  # masked like a log line


def test_debug_shows_the_traceback_instead(cli: Cli) -> None:
    flag = cli("--debug", "worker", "broken_app:app", code=1)
    assert "Traceback" in flag.stderr and "RuntimeError" in flag.stderr
    cli.env["CONVEYOR_DEBUG"] = "1"
    env = cli("worker", "broken_app:app", code=1)
    assert "Traceback" in env.stderr and "RuntimeError" in env.stderr


def test_a_programming_error_is_a_conveyor_error_so_one_line(cli: Cli) -> None:
    proc = cli("worker", "duplicate_app:app", code=1)
    assert_one_error_line(proc, "'report' is already registered")


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
def test_an_unreachable_redis_store_is_one_error_line_naming_it(cli: Cli, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}"  # nothing listens there
    proc = cli("jobs", "list", "--url", url, code=1)
    assert_one_error_line(proc, url)
