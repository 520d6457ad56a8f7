"""The billing example, run the way a user runs it, against a throwaway store.

``python -m examples.billing`` runs in a subprocess with ``CONVEYOR_URL`` and
``BILLING_DATA_DIR`` pointing into ``tmp_path``. The generator's manifest
says what it injected into each file; the jobs in the store and the rows in
the billing database must agree with it exactly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

from examples.billing import ledger

from conveyor import Conveyor, Job, JobState

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--files", "3", "--rows", "300"]
EVERY_RULE = {
    "missing_field",
    "malformed_row",
    "amount_not_a_number",
    "amount_negative",
    "amount_precision",
    "duplicate_invoice",
    "bad_date",
    "due_before_issued",
    "date_out_of_range",
    "bad_email",
    "unknown_currency",
}


def run_example(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "BILLING_"))}
    env |= {
        "CONVEYOR_URL": store_url(tmp_path),
        "BILLING_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "120",
    }
    result = subprocess.run(
        [sys.executable, "-m", "examples.billing", *SMALL, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


def manifest(tmp_path: Path) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = json.loads((tmp_path / "data" / "manifest.json").read_text())[
        "files"
    ]
    return files


async def stored_jobs(tmp_path: Path) -> list[Job[Any]]:
    async with Conveyor(store_url(tmp_path), configure_logging=False) as app:
        jobs: list[Job[Any]] = []
        for state in JobState:
            jobs += await app.jobs.list(state, limit=1000)
        return jobs


def file_of(job: Job[Any]) -> str:
    args, _kwargs = job.args
    return Path(args[0]).name


def billing_counts(tmp_path: Path) -> dict[str, tuple[int, int, int]]:
    """Per file: records, valid records, findings in the example's own database."""
    with closing(sqlite3.connect(tmp_path / "data" / "billing.db")) as db:
        records = db.execute("SELECT file, count(*), sum(valid) FROM records GROUP BY file")
        findings = dict(db.execute("SELECT file, count(*) FROM findings GROUP BY file").fetchall())
        return {file: (rows, valid, findings.get(file, 0)) for file, rows, valid in records}


async def test_good_exports_complete_with_exact_counts_and_the_corrupt_one_fails(
    tmp_path: Path,
) -> None:
    run_example(tmp_path)

    expected = manifest(tmp_path)
    jobs = {file_of(job): job for job in await stored_jobs(tmp_path)}
    assert sorted(jobs) == sorted(Path(f["path"]).name for f in expected)
    good = [f for f in expected if not f["corrupt"]]
    assert len(good) == 3
    injected = set().union(*(f["findings"] for f in good))
    assert injected == EVERY_RULE, "the small run must exercise every rule"

    counts = billing_counts(tmp_path)
    for f in good:
        name = Path(f["path"]).name
        job = jobs[name]
        assert job.status is JobState.COMPLETED, job.error
        assert job.attempts == 1
        assert job.result == {
            "file": name,
            "rows": 300,
            "valid": f["valid"],
            "invalid": f["invalid"],
            "findings": f["findings"],
            "totals": f["totals"],
        }
        assert counts[name] == (300, f["valid"], sum(f["findings"].values()))

    (corrupt,) = [f for f in expected if f["corrupt"]]
    job = jobs[Path(corrupt["path"]).name]
    assert job.status is JobState.FAILED
    assert job.attempts == 3  # the first attempt and retries=2
    assert job.error is not None
    assert job.error.type == "CorruptFileError"
    assert "gzip" in job.error.message
    assert Path(corrupt["path"]).name not in counts


async def test_running_again_reuses_the_jobs_and_fresh_replaces_the_rows(tmp_path: Path) -> None:
    run_example(tmp_path)
    first = {job.id: job.attempts for job in await stored_jobs(tmp_path)}
    counts = billing_counts(tmp_path)

    # Same files, same job ids: enqueue returns the finished jobs; nothing runs again.
    run_example(tmp_path)
    assert {job.id: job.attempts for job in await stored_jobs(tmp_path)} == first

    # --fresh makes new jobs; the task replaces each file's rows instead of adding to them.
    run_example(tmp_path, "--fresh")
    jobs = await stored_jobs(tmp_path)
    assert len(jobs) == 2 * len(first)
    new = [job for job in jobs if job.id not in first]
    assert sorted(job.status.value for job in new) == ["completed"] * 3 + ["failed"]
    assert billing_counts(tmp_path) == counts


def test_jobs_starting_together_on_a_new_billing_database_all_store_their_rows(
    tmp_path: Path,
) -> None:
    """The validation jobs open the billing database together on the first run: on a
    new file one of them was told ``database is locked`` about one round in seven
    (a retried attempt in CI) before ``ledger.use_wal`` waited for its turn."""
    failures: list[str] = []

    def store(path: Path, file: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            ledger.replace_file(path, file, [])
        except sqlite3.Error as exc:
            failures.append(f"{file}: {exc}")

    for round_ in range(60):
        path = tmp_path / f"billing-{round_}.db"
        start = threading.Barrier(4)
        threads = [
            threading.Thread(target=store, args=(path, f"export-{n}.csv", start)) for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
