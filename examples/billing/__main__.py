"""Validate the invoice exports with conveyor and watch every job live.

    python -m examples.billing [--files 5] [--rows 10000] [--concurrency 4] [--fresh]

1. generate the exports into examples/billing/data/ (or $BILLING_DATA_DIR),
2. enqueue one ``validate_billing_file`` job per file,
3. run a worker in this process and draw each job's progress as it goes,
4. stop the worker once every job has finished, and print a summary.

Exits 0 when every good export completed and the corrupt one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from conveyor import Job, JobState, WorkerStats

from . import generate
from .app import DATA_DIR, DATABASE, app, validate_billing_file
from .display import JobBoard, route_logs_to, summary

POLL_SECONDS = 0.25


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.billing", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--files", type=int, default=generate.DEFAULT_FILES, help="good exports")
    parser.add_argument("--rows", type=int, default=generate.DEFAULT_ROWS, help="rows per export")
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs run at once")
    parser.add_argument(
        "--fresh", action="store_true", help="validate again exports an earlier run already did"
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, console: Console) -> int:
    exports = generate.generate(DATA_DIR, files=args.files, rows=args.rows, seed=args.seed)
    console.print(f"Generated {len(exports)} exports (one corrupt) in {DATA_DIR}")
    console.print(f"Jobs are stored in {app.settings.masked_url}")
    async with app:
        jobs = await enqueue([export.path for export in exports], fresh=args.fresh)
        already_done = sum(job.status.is_finished for job in jobs)
        worker = app.worker(concurrency=args.concurrency, handle_signals=True)
        working = asyncio.create_task(worker.run(), name="billing-worker")
        with JobBoard(console) as board:
            for job, export in zip(jobs, exports, strict=True):
                board.add(job, export.path.name)
            all_finished = await watch(jobs, board, working)
        worker.stop()
        await working

    console.print()
    console.print(summary(jobs, "Billing exports"))
    if already_done:
        console.print(
            f"{already_done} of {len(jobs)} jobs had already finished in an earlier run: same"
            " file content, same job id, same job. Pass --fresh to validate them again."
        )
    console.print(f"Rows and findings: {DATABASE} (tables records, findings)")
    if not all_finished:
        console.print("[yellow]Stopped early; the unfinished jobs stay queued for the next run.")
        return 130
    expected = all(
        job.status is (JobState.FAILED if export.corrupt else JobState.COMPLETED)
        for job, export in zip(jobs, exports, strict=True)
    )
    return 0 if expected else 1


async def enqueue(paths: Sequence[Path], *, fresh: bool) -> list[Job[Any]]:
    """One job per export, all in one store call.

    The job id is the file's name and content hash, so enqueueing the same
    export twice (this script run again, or a sender re-uploading the same
    file) returns the existing job instead of validating it again. ``fresh``
    adds a run id to every job id, which makes them new jobs.
    """
    run_id = f":{secrets.token_hex(4)}" if fresh else ""
    calls = []
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        job_id = f"billing:{path.name}:{digest}{run_id}"
        calls.append(validate_billing_file.options(job_id=job_id).call(str(path.resolve())))
    return await app.enqueue_many(calls)


async def watch(
    jobs: Sequence[Job[Any]], board: JobBoard, working: asyncio.Task[WorkerStats]
) -> bool:
    """Poll the jobs a few times a second until all have finished.

    Returns False if the worker stopped first (Ctrl-C); re-raises if it crashed.
    """
    while True:
        await asyncio.gather(*(job.refresh() for job in jobs))
        for job in jobs:
            board.update(job)
        if all(job.status.is_finished for job in jobs):
            return True
        if working.done():
            working.result()
            return False
        await asyncio.sleep(POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    route_logs_to(console)
    return asyncio.run(run(args, console))


if __name__ == "__main__":
    sys.exit(main())
