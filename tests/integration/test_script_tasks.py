"""A task defined in a script has one name whether the script runs or a worker imports it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.integration.test_cli import Cli

SCRIPT = """
import asyncio
import sys

from conveyor import Conveyor

app = Conveyor({url!r}, configure_logging=False)


@app.task
async def export_report(user_id: int) -> str:
    return f"reports/{{user_id}}.csv"


async def main(action: str) -> None:
    async with app:
        if action == "enqueue":
            job = await export_report.enqueue(7)
            print(job.id, job.task)
        else:
            stats = await app.work(burst=True)
            print(f"{{stats.completed}} completed, {{stats.failed}} failed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
"""

LAYOUTS = {
    # how the script is run: (its file, the python arguments, APP for the worker, task name)
    "python report.py": ("report.py", ["report.py"], "report:app", "report.export_report"),
    "python -m report": ("report.py", ["-m", "report"], "report:app", "report.export_report"),
    "python pkg/report.py": (
        "pkg/report.py",
        ["pkg/report.py"],
        "pkg.report:app",
        "pkg.report.export_report",
    ),
}


class Project:
    def __init__(self, tmp_path: Path, layout: str) -> None:
        file, self.python_args, self.app_path, self.task_name = LAYOUTS[layout]
        self.cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'jobs.db'}")
        script = tmp_path / file
        script.parent.mkdir(exist_ok=True)
        if script.parent != tmp_path:
            (script.parent / "__init__.py").write_text("")
        script.write_text(SCRIPT.format(url=self.cli.url))

    def run_script(self, action: str) -> str:
        proc = subprocess.run(
            [sys.executable, *self.python_args, action],
            cwd=self.cli.cwd,
            env=self.cli.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()[-1]  # after the worker's log lines, if any

    def job(self, job_id: str) -> tuple[str, str, object]:
        async def read() -> tuple[str, str, object]:
            async with Conveyor(self.cli.url, configure_logging=False) as app:
                job = await app.jobs.get(job_id)
                return job.task, job.status.value, job.result

        return asyncio.run(read())


@pytest.fixture(params=list(LAYOUTS))
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project(tmp_path, request.param)


def test_a_job_enqueued_by_the_script_runs_in_a_worker_that_imports_it(project: Project) -> None:
    job_id, task_name = project.run_script("enqueue").split()
    assert task_name == project.task_name

    summary = project.cli("worker", project.app_path, "--burst").stdout
    assert "1 processed (1 completed, 0 failed" in summary
    assert project.job(job_id) == (project.task_name, "completed", "reports/7.csv")


def test_a_job_enqueued_through_the_import_runs_in_the_script_s_worker(project: Project) -> None:
    job_id = project.cli("enqueue", project.app_path, "export_report", "--args", "[8]").stdout
    assert project.run_script("work") == "1 completed, 0 failed"
    assert project.job(job_id.strip()) == (project.task_name, "completed", "reports/8.csv")
