"""Every Python sample in README.md and docs/ runs as written.

Each ```python block is saved as a file in a fresh directory and run with
``python sample.py``, as a reader would, with no ``CONVEYOR_*`` variable
set (so ``Conveyor()`` is the embedded SQLite store there); a sample that
reads ``DATABASE_URL`` gets the test session's PostgreSQL server there. It must exit
with 0, and a ``print(...)`` line whose comment is a Python literal
(``print(await job.wait())  # "reports/7.xlsx"``) must print that value.

Two HTML comments, invisible on the rendered page, go on the line right
before a fence:

- ``<!-- continues -->``: the block goes on from the blocks before it in the
  same file (the text says so), and runs appended to them.
- ``<!-- fragment: why -->``: the block cannot run alone, for the reason
  given; it is only compiled.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CONTINUES = "<!-- continues -->"
FRAGMENT = re.compile(r"<!-- fragment: \S.* -->")


@dataclass(frozen=True)
class Sample:
    document: Path
    line: int
    code: str
    program: str | None
    """What runs: the block, after the blocks it continues; None for a fragment."""

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def samples_in(document: Path) -> list[Sample]:
    lines = document.read_text().splitlines()
    found: list[Sample] = []
    program = ""
    start = None
    for number, line in enumerate(lines, 1):
        if start is None and line.strip() in ("```python", "```py"):
            start = number
        elif start is not None and line.strip() == "```":
            code = "\n".join(lines[start : number - 1]) + "\n"
            mark = lines[start - 2].strip() if start > 1 else ""
            if FRAGMENT.fullmatch(mark):
                found.append(Sample(document, start, code, None))
            else:
                if mark == CONTINUES:
                    assert program, f"{document}:{start} continues no earlier block"
                    program += "\n\n" + code
                else:
                    program = code
                found.append(Sample(document, start, code, program))
            start = None
    return found


SAMPLES = [sample for document in DOCUMENTS for sample in samples_in(document)]


def printed_values(code: str) -> list[str]:
    """What the block's ``print(...)  # <literal>`` lines say they print."""
    values = []
    for line in code.splitlines():
        match = re.search(r"\bprint\(.*\)\s*#\s*(.+)$", line)
        if match:
            values.append(str(ast.literal_eval(match[1])))
    return values


def test_the_readme_has_runnable_samples() -> None:
    readme = [s for s in SAMPLES if s.document.name == "README.md"]
    assert len([s for s in readme if s.program is not None]) >= 5
    assert sum(len(printed_values(s.code)) for s in readme) >= 3


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_a_sample_runs_as_written(
    sample: Sample, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    compile(sample.code, sample.name, "exec")
    if sample.program is None:
        return
    (tmp_path / "sample.py").write_text(sample.program)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    if "DATABASE_URL" in sample.program:  # a PostgreSQL sample: the test session's server
        server: PostgresServer = request.getfixturevalue("postgres_server")
        env["DATABASE_URL"] = server.dsn
    proc = subprocess.run(
        [sys.executable, "sample.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{sample.name} failed:\n{proc.stderr}"
    printed = proc.stdout.splitlines()
    for value in printed_values(sample.code):
        assert value in printed, f"{sample.name} should print {value!r}; printed {printed}"


def test_continued_blocks_run_after_the_ones_before_and_fragments_only_compile(
    tmp_path: Path,
) -> None:
    document = tmp_path / "guide.md"
    document.write_text(
        "```python\nx = 1\n```\n\n<!-- continues -->\n```python\nprint(x)  # 1\n```\n\n"
        "<!-- fragment: needs a running server -->\n```python\nawait go()\n```\n"
        "```python\ny = 2\n```\n"
    )
    first, continued, fragment, fresh = samples_in(document)
    assert (first.program, continued.program) == ("x = 1\n", "x = 1\n\n\nprint(x)  # 1\n")
    assert printed_values(continued.code) == ["1"]
    assert (fragment.program, fresh.program) == (None, "y = 2\n")
