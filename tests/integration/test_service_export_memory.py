"""The reference service's export streams its rows to the file in constant memory
(issue 14, module 2): the peak of Python's allocations while a worker runs the export
job does not grow with the number of rows.

Deterministic, not timing: tracemalloc counts every byte Python allocates. An export
that built the whole CSV in memory would hold at least the file's text at its peak,
so ten times the rows would raise the peak by at least the extra file's size; the
streaming export's peak is one partition of rows, whatever the range.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.reference_service import service_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
N = 6_000  # three partitions already: the peak holds one, plus the next one fetched
WARM_UP = 100  # allocates what is allocated once (compiled queries, lazy imports) first


def exports(root: Path, *sizes: int) -> list[dict[str, Any]]:
    """Run ``service_export_memory`` on ``sizes`` in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **service_env(root, "memory://")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.service_export_memory", *map(str, sizes)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    found: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_an_export_of_ten_times_the_rows_peaks_at_the_same_memory(tmp_path: Path) -> None:
    _, small, large = exports(tmp_path, WARM_UP, N, 10 * N)
    assert 3 * small["partition"] <= N
    for export, rows in ((small, N), (large, 10 * N)):
        assert export["result"]["rows"] == rows
        assert export["lines"] == rows + 1  # the header, then every row
    extra_file = large["result"]["sizeBytes"] - small["result"]["sizeBytes"]
    growth = large["peak"] - small["peak"]
    assert extra_file > 3_000_000
    # Holding the file's text would add at least extra_file bytes; allow a tenth of it
    # for what varies between runs (the allocator, the store's bookkeeping).
    assert growth < extra_file / 10, (small["peak"], large["peak"], extra_file)
