"""mypy sees through ``@app.task``: enqueue is checked against the function's signature."""

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
