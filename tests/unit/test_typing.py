"""mypy sees through ``@app.task``: enqueue and schedules are checked against the signature."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SAMPLE = textwrap.dedent(
    """
    from conveyor import Conveyor, Job

    app = Conveyor("memory://")

    @app.task(retries=3)
    async def export_report(user_id: int, fmt: str = "csv") -> str:
        return f"{user_id}.{fmt}"

    @app.task
    def total(values: list[float]) -> float:
        return sum(values)

    async def main() -> None:
        job: Job[str] = await export_report.enqueue(7, fmt="xlsx")
        result: str = await job.wait()
        await export_report.options(delay=5).enqueue(8)
        await total.enqueue([1.0, 2.0])
        await export_report.enqueue("seven")  # error: wrong type
        await export_report.enqueue(7, format="pdf")  # error: unknown keyword
        await total.enqueue()  # error: missing argument
        number: int = await (await total.enqueue([1.0])).wait()  # error: float is not int
        await export_report.options(debounce=("user:7", 5)).enqueue(7)
        await export_report.options(throttle=("user:7", 60)).enqueue(7)
        await app.schedules.add(export_report.call(7, fmt="pdf"), cron="0 8 * * *", tz="UTC")
        await app.schedules.add(export_report.call("seven"), every=60)  # error: wrong type
        await app.schedules.add(total.call([1.0]), every=5, missed="sometimes")  # error: policy
    """
)


def test_mypy_checks_enqueue_arguments_and_results(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    stdout, _, _ = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(sample)]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    lines = SAMPLE.splitlines()
    flagged = sorted({lines[int(e.split(":")[1]) - 1].strip() for e in errors})
    assert flagged == sorted(line.strip() for line in lines if "# error:" in line), stdout
