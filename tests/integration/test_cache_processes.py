"""The cache across real processes: one computation for a burst of misses everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import server_param, shared_store_url

pytestmark = pytest.mark.slow

PROCESSES = 4
CALLERS = 250  # per process: 1,000 concurrent misses in all


@pytest.mark.parametrize("kind", ["sqlite", server_param("redis"), server_param("postgres")])
def test_a_thousand_misses_across_four_processes_compute_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = shared_store_url(request, kind, tmp_path)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.cache_stampede_worker",
                url,
                "report",
                str(CALLERS),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("ready-*"))) < PROCESSES:  # all imported and connected
        assert time.monotonic() < deadline, "the worker processes did not start"
        assert all(p.poll() is None for p in procs), "a worker process died"
        time.sleep(0.01)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["computed"] for r in results) == 1
    values = {v for r in results for v in r["values"]}
    assert len(values) == 1  # every caller in every process got the one computed value
