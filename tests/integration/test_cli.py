"""The ``conveyor`` command line, run for real in subprocesses against a SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor

APP_MODULE = """
from conveyor import Conveyor, current_job

app = Conveyor({url!r})


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task
async def greet(name: str) -> str:
    job = current_job()
    job.log(f"greeting [b]{{name}}[/b]")
    job.set_progress(100)
    return f"hello {{name}}"


@app.task
async def explode() -> None:
    raise RuntimeError("boom [red]markup[/red]")


@app.task
def export_monthly_report(month: str) -> str:
    return f"reports/{{month}}.csv"
"""

APP = "cli_app:app"


class Cli:
    """Runs ``python -m conveyor`` in a directory holding ``cli_app.py``."""

    def __init__(self, cwd: Path, url: str) -> None:
        self.cwd = cwd
        self.url = url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "conveyor", *args]

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == code, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        return proc

    def admin(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        """An admin command against the test store, given by ``--url``."""
        return self(*args, "--url", self.url, code=code)

    def json(self, *args: str) -> Any:
        return json.loads(self.admin(*args, "--json").stdout)

    def enqueue(self, task: str, *args: str) -> str:
        return self("enqueue", APP, task, *args).stdout.strip()

    def create_store(self) -> None:
        """Create the test store, as a producer or a worker would (admin commands never do)."""

        async def open_and_close() -> None:
            async with Conveyor(self.url, configure_logging=False):
                pass

        asyncio.run(open_and_close())

    def run_script(self, name: str) -> None:
        proc = subprocess.run(
            [sys.executable, name], cwd=self.cwd, env=self.env, capture_output=True, timeout=30
        )
        assert proc.returncode == 0, proc.stderr

    def work(self) -> str:
        return self("worker", APP, "--burst").stdout

    def waiting(self, queue: str = "default") -> int:
        (info,) = [q for q in self.json("queues") if q["name"] == queue]
        return int(info["counts"]["waiting"])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"  # tmp_path is absolute: sqlite:////...
    (tmp_path / "cli_app.py").write_text(APP_MODULE.format(url=url))
    return Cli(tmp_path, url)


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_enqueued_job_waits_until_a_burst_worker_completes_it(cli: Cli) -> None:
    job_id = cli.enqueue("add", "--args", "[1, 2]")
    assert len(job_id) == 32
    assert cli.waiting() == 1
    assert "default" in cli.admin("queues").stdout

    summary = cli.work()
    assert "1 processed (1 completed, 0 failed" in summary

    (job,) = cli.json("jobs", "list", "--state", "completed")
    assert job["id"] == job_id
    assert job["status"] == "completed"
    assert job["result"] == 3
    assert job_id in cli.admin("jobs", "list", "--state", "completed").stdout


def test_failed_job_shows_its_traceback_and_retry_puts_it_back_to_waiting(cli: Cli) -> None:
    job_id = cli.enqueue("explode")
    assert "1 failed" in cli.work()

    job = cli.json("jobs", "show", job_id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "RuntimeError"
    assert "Traceback" in job["error"]["traceback"]
    shown = cli.admin("jobs", "show", job_id).stdout
    assert "boom [red]markup[/red]" in shown  # user text is printed literally

    assert "is waiting again" in cli.admin("jobs", "retry", job_id).stdout


def test_retrying_a_job_that_did_not_fail_is_an_error(cli: Cli) -> None:
    job_id = cli.enqueue("add", "--args", "[1, 1]")
    proc = cli.admin("jobs", "retry", job_id, code=1)
    assert_one_error_line(proc, job_id, "waiting")


def test_paused_queue_is_skipped_by_workers_until_resumed(cli: Cli) -> None:
    cli.enqueue("add", "--args", "[1, 2]")
    # The group's --url reaches the subcommand, and --app works as a store source.
    cli("queues", "--url", cli.url, "pause", "default")
    (queue,) = json.loads(cli("queues", "--app", APP, "--json").stdout)
    assert queue["paused"] is True

    assert "0 processed" in cli.work()

    assert "resumed" in cli.admin("queues", "resume", "default").stdout
    assert "1 completed" in cli.work()


def test_pausing_an_unknown_queue_is_refused_and_creates_nothing(cli: Cli) -> None:
    cli.enqueue("add", "--args", "[1, 2]")
    proc = cli.admin("queues", "pause", "defualt", code=1)
    assert_one_error_line(proc, "no queue named 'defualt'", "known queues: default")
    assert_one_error_line(cli.admin("queues", "resume", "defualt", code=1), "'defualt'")
    assert [q["name"] for q in cli.json("queues")] == ["default"]


def test_a_known_queue_without_jobs_can_be_paused(cli: Cli) -> None:
    cli.create_store()
    cli("queues", "--app", APP, "pause", "default")  # named by the app's tasks
    cli.admin("queues", "limit", "emails", "--concurrency", "5")  # named by its limits
    cli.admin("queues", "pause", "emails")
    paused = {q["name"]: q["paused"] for q in cli.json("queues")}
    assert paused == {"default": True, "emails": True}


def test_clean_deletes_finished_jobs_older_than_the_cutoff(cli: Cli) -> None:
    cli.enqueue("add", "--args", "[1, 2]")
    cli.work()

    kept = cli.admin("queues", "clean", "default", "--state", "completed", "--older-than", "3600")
    assert "removed 0 completed jobs" in kept.stdout
    cleaned = cli.admin("queues", "clean", "default", "--state", "completed")
    assert "removed 1 completed jobs" in cleaned.stdout
    assert cli.json("jobs", "list", "--state", "completed") == []


def table_rows(out: str) -> list[list[str]]:
    """The body rows of a rich table, each cell as its lines joined (a folded value whole).

    A row starts where its last cell, a time that never folds, is not empty.
    """
    rows: list[list[str]] = []
    body = False
    for line in out.splitlines():
        body = body or line.startswith("┡")
        if not (body and line.startswith("│")):
            continue
        cells = [part.strip() for part in line.strip("│").split("│")]
        if cells[-1]:
            rows.append(cells)
        else:
            rows[-1] = [kept + more for kept, more in zip(rows[-1], cells, strict=True)]
    return rows


def test_jobs_list_shows_whole_ids_task_names_and_times_at_80_columns(cli: Cli) -> None:
    cli.env["COLUMNS"] = "80"
    monthly = "cli_app.export_monthly_report"
    jobs = [  # newest last
        (cli.enqueue("add", "--args", "[1, 2]", "--queue", "emails.high"), "cli_app.add"),
        (cli.enqueue("export_monthly_report", "--args", '["2025-03"]'), monthly),
        (cli.enqueue(monthly, "--args", '["2025-04"]', "--job-id", "invoice-2025-04-01"), monthly),
    ]
    queues = ["emails.high", "default", "default"]
    for only_default in (False, True):
        out = cli.admin("jobs", "list", *(["--queue", "default"] if only_default else [])).stdout
        assert "…" not in out
        assert max(len(line) for line in out.splitlines()) <= 80
        listed = list(zip(jobs, queues, strict=True))[1 if only_default else 0 :]
        rows = table_rows(out)
        assert [row[0] for row in rows] == [job_id for (job_id, _), _ in reversed(listed)]
        for row, ((_, task), queue) in zip(rows, reversed(listed), strict=True):
            assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d:\d\d", row[-1])
            assert task in row[1]
            # One queue: it is the table's title; several: each under its task's name.
            assert ("queue default" in out) if only_default else (queue in row[1])


def test_cancelled_job_can_be_removed(cli: Cli) -> None:
    enqueued = cli("enqueue", APP, "add", "--args", "[1, 2]", "--delay", "3600", "--json")
    job = json.loads(enqueued.stdout)
    job_id = job["id"]
    assert job["status"] == "scheduled"

    assert f"job {job_id} cancelled" in cli.admin("jobs", "cancel", job_id).stdout
    assert "removed" in cli.admin("jobs", "remove", job_id).stdout
    assert_one_error_line(cli.admin("jobs", "show", job_id, code=1), "no job")


def test_enqueue_with_a_job_id_is_idempotent(cli: Cli) -> None:
    first = json.loads(
        cli("enqueue", APP, "add", "--args", "[1, 2]", "--job-id", "x1", "--json").stdout
    )
    again = cli.enqueue("add", "--args", "[5, 5]", "--job-id", "x1")
    assert first["id"] == again == "x1"
    assert first["args"] == [1, 2]
    assert cli.waiting() == 1


def test_bad_json_in_args_is_one_error_line(cli: Cli) -> None:
    proc = cli("enqueue", APP, "add", "--args", "[1,", code=1)
    assert_one_error_line(proc, "--args", "JSON")
    assert proc.stdout == ""


def test_arguments_that_do_not_fit_the_task_s_annotations_are_refused(cli: Cli) -> None:
    proc = cli("enqueue", APP, "add", "--args", '["seven", 2]', code=1)
    assert_one_error_line(proc, "cli_app.add", "argument a", "int", "str")
    scheduled = cli("schedules", "add", APP, "greet", "--args", "[7]", "--every", "60", code=1)
    assert_one_error_line(scheduled, "cli_app.greet", "argument name", "str", "int")
    cli.create_store()
    assert cli.json("jobs", "list") == []
    assert cli.json("schedules", "list") == []


def test_unknown_job_id_is_an_error(cli: Cli) -> None:
    cli.create_store()
    assert_one_error_line(cli.admin("jobs", "show", "nope", code=1), "nope")
    assert_one_error_line(cli.admin("jobs", "cancel", "nope", code=1), "nope")


def test_unknown_task_lists_the_known_tasks(cli: Cli) -> None:
    proc = cli("enqueue", APP, "nope", code=1)
    assert_one_error_line(proc, "'nope'", "cli_app.add", "cli_app.explode")


@pytest.mark.parametrize(
    ("app_path", "fragment"),
    [
        ("cli_app", "module.path:attribute"),
        ("no_such_module:app", "cannot import"),
        ("cli_app:nope", "no attribute"),
        ("cli_app:add", "not a conveyor.Conveyor"),
    ],
)
def test_bad_app_path_is_one_error_line(cli: Cli, app_path: str, fragment: str) -> None:
    assert_one_error_line(cli("worker", app_path, code=1), fragment)


def test_invalid_store_url_is_one_error_line_with_the_password_masked(cli: Cli) -> None:
    proc = cli("jobs", "list", "--url", "nosuch://user:hunter2@host", code=1)
    assert_one_error_line(proc, "nosuch", "***")
    assert "hunter2" not in proc.stderr


async def test_worker_runs_until_sigterm_and_jobs_show_prints_the_log(
    cli: Cli, tmp_path: Path
) -> None:
    with (tmp_path / "worker.log").open("w") as worker_log:
        worker = subprocess.Popen(
            cli.command("worker", APP, "--queues", "default", "--concurrency", "2"),
            cwd=cli.cwd,
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=worker_log,
            text=True,
        )
    with worker:
        try:
            job_id = cli.enqueue("greet", "--args", '["ada"]')
            async with Conveyor(cli.url, configure_logging=False) as app:
                job = await app.jobs.get(job_id)
                assert await job.wait(timeout=20) == "hello ada"
            worker.send_signal(signal.SIGTERM)  # it is in its claim loop: handlers are set
            stdout, _ = worker.communicate(timeout=20)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0
    assert "stopped: 1 processed (1 completed" in stdout

    shown = cli.json("jobs", "show", job_id)
    assert shown["progress"] == 100
    assert [line["line"] for line in shown["logs"]] == ["greeting [b]ada[/b]"]
    table = cli.admin("jobs", "show", job_id).stdout
    for fragment in (job_id, "cli_app.greet", "completed", "hello ada", "greeting [b]ada[/b]"):
        assert fragment in table


def test_jobs_wait_prints_the_result_or_fails_with_the_error(cli: Cli) -> None:
    done = cli.enqueue("add", "--args", "[2, 3]")
    failed = cli.enqueue("explode")
    cli.work()
    assert cli.admin("jobs", "wait", done).stdout.strip() == "5"
    assert cli.json("jobs", "wait", done)["result"] == 5
    assert_one_error_line(cli.admin("jobs", "wait", failed, code=1), "RuntimeError", "boom")
    waiting = cli.enqueue("add", "--args", "[1, 1]")
    proc = cli.admin("jobs", "wait", waiting, "--timeout", "0.1", code=1)
    assert_one_error_line(proc, "still waiting")


def test_events_tail_prints_events_as_they_happen(cli: Cli, tmp_path: Path) -> None:
    cli.create_store()
    tail = subprocess.Popen(
        cli.command("events", "tail", "--url", cli.url, "--json", "--count", "2"),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with tail:
        try:
            assert tail.stderr is not None
            assert "tailing job events" in tail.stderr.readline()  # subscribed
            first = cli.enqueue("add", "--args", "[1, 2]")
            second = cli.enqueue("explode")
            cli.work()
            stdout, _ = tail.communicate(timeout=20)
        finally:
            if tail.poll() is None:
                tail.kill()
    assert tail.returncode == 0
    events = {e["job_id"]: e for e in map(json.loads, stdout.splitlines())}  # in finish order
    assert (events[first]["kind"], events[second]["kind"]) == ("completed", "failed")
    assert events[second]["data"]["type"] == "RuntimeError"


def test_queue_limits_are_set_shown_and_cleared(cli: Cli) -> None:
    cli.create_store()
    cli("queues", "--url", cli.url, "limit", "emails", "--concurrency", "5", "--rate", "600/1m")
    shown = json.loads(cli("queues", "limit", "emails", "--url", cli.url, "--json").stdout)
    assert shown == {
        "concurrency": 5,
        "rate": "600/60s",
        "tasks": {},
        "backoff_until_ms": None,
    }
    cli("queues", "limit", "emails", "--url", cli.url, "--clear")
    shown = json.loads(cli("queues", "limit", "emails", "--url", cli.url, "--json").stdout)
    assert (shown["concurrency"], shown["rate"]) == (None, None)
    bad = cli("queues", "limit", "emails", "--url", cli.url, "--rate", "fast", code=1)
    assert "--rate must look like" in bad.stderr
    cli("queues", "backoff", "emails", "30", "--url", cli.url)
    shown = json.loads(cli("queues", "limit", "emails", "--url", cli.url, "--json").stdout)
    assert shown["backoff_until_ms"] > 0
