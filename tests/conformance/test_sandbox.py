"""Sandboxed tasks: each attempt in a child process that may crash or be killed."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Backoff, JobState, ProgrammingError
from conveyor.stores.base import now_ms
from tests.conformance import sandboxed
from tests.conftest import AppFactory


async def test_a_sandboxed_task_runs_in_a_child_process_and_reports_back(
    make_app: AppFactory,
) -> None:
    app = make_app()
    where = app.task(sandbox=True)(sandboxed.where)
    double = app.task(sandbox=True)(sandboxed.double)

    job, other = await where.enqueue(2, 3), await double.enqueue(21)
    stats = await app.work(burst=True)
    assert stats.completed == 2
    result = await job.wait(timeout=30)
    assert result["sum"] == 5
    assert result["pid"] != os.getpid()
    assert result["fence"] == 1
    assert job.progress == 50
    assert [line.line for line in await job.logs()] == ["in the child"]
    assert await other.wait(timeout=30) == 42


@pytest.mark.parametrize(
    ("fn", "expected"),
    [(sandboxed.segfault, "killed by SIGSEGV"), (sandboxed.exit_hard, "exited with code 3")],
)
async def test_a_crashing_sandboxed_task_is_retried_then_failed_and_the_worker_serves_on(
    make_app: AppFactory, fn: Callable[[], None], expected: str
) -> None:
    app = make_app()
    crash = app.task(sandbox=True, retries=1, backoff=Backoff.fixed(0))(fn)

    @app.task
    async def healthy() -> str:
        return "still serving"

    crashed = await crash.enqueue()
    fine = await healthy.enqueue()
    stats = await app.work(burst=True, concurrency=2)
    assert (stats.retried, stats.failed, stats.completed) == (1, 1, 1)
    assert await fine.wait(timeout=5) == "still serving"
    await crashed.refresh()
    assert (crashed.status, crashed.attempts) == (JobState.FAILED, 2)
    assert crashed.error is not None
    assert crashed.error.type == "SandboxCrashedError"
    assert expected in crashed.error.message


async def test_a_sandboxed_task_past_its_timeout_is_killed(
    make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app()
    spin = app.task(sandbox=True, timeout=1)(sandboxed.spin)

    @app.task
    async def healthy() -> str:
        return "still serving"

    job = await spin.enqueue(str(tmp_path / "pid"))
    fine = await healthy.enqueue()
    stats = await app.work(burst=True, concurrency=2)
    assert (stats.failed, stats.completed) == (1, 1)
    assert await fine.wait(timeout=5) == "still serving"
    await job.refresh()
    assert job.error is not None and job.error.type == "JobTimeoutError"
    if (tmp_path / "pid").exists():  # (a very slow start may time out before it is written)
        _assert_gone(int((tmp_path / "pid").read_text()))


async def test_cancelling_a_running_sandboxed_job_kills_its_process(
    make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app()
    spin = app.task(sandbox=True)(sandboxed.spin)
    pid_file = tmp_path / "pid"
    job = await spin.enqueue(str(pid_file))
    worker = asyncio.create_task(app.work(burst=True))
    async with asyncio.timeout(60):
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.02)
    await job.cancel()
    stats = await worker
    assert stats.cancelled == 1
    assert (await job.refresh()).status is JobState.CANCELLED
    _assert_gone(int(pid_file.read_text()))


async def test_cancelling_a_sandboxed_job_kills_the_processes_its_task_started(
    make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app()
    spawn = app.task(sandbox=True)(sandboxed.spawn_and_spin)
    pid_file = tmp_path / "pid"
    job = await spawn.enqueue(str(pid_file))
    worker = asyncio.create_task(app.work(burst=True))
    async with asyncio.timeout(60):
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.02)
        await job.cancel()
        assert (await worker).cancelled == 1
    grandchild = int(pid_file.read_text())
    try:
        async with asyncio.timeout(10):  # SIGKILL is sent; the process may take a moment to go
            while _alive(grandchild):
                await asyncio.sleep(0.02)
    finally:
        if _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


@pytest.mark.parametrize(
    ("fn", "arg", "status"),
    [
        (sandboxed.log_wide, 800_000, JobState.COMPLETED),  # a 2.4 MB log line
        (sandboxed.raise_quoted, 1_000_000, JobState.FAILED),  # a 2 MB message in JSON
    ],
)
async def test_a_sandboxed_task_with_an_oversized_log_or_error_neither_hangs_nor_crashes(
    make_app: AppFactory, fn: Callable[[int], object], arg: int, status: JobState
) -> None:
    app = make_app()
    task = app.task(sandbox=True, retries=0)(fn)
    job = await task.enqueue(arg)
    async with asyncio.timeout(30):  # the attempt used to deadlock on the pipe
        await app.work(burst=True)
    await job.refresh()
    assert job.status is status, job.error
    if status is JobState.FAILED:
        assert job.error is not None and job.error.type == "ValueError"
        assert job.error.message.startswith('"""')


async def test_a_sandboxed_child_sending_an_oversized_frame_is_killed_and_the_job_fails(
    make_app: AppFactory,
) -> None:
    app = make_app()
    task = app.task(sandbox=True, retries=0)(sandboxed.log_unclipped)
    job = await task.enqueue(800_000)
    async with asyncio.timeout(30):  # the attempt used to deadlock on the pipe
        stats = await app.work(burst=True)
    assert stats.failed == 1
    await job.refresh()
    assert job.error is not None and job.error.type == "SandboxProtocolError"
    assert "sent a frame of" in job.error.message


async def test_an_exception_in_the_sandbox_is_recorded_as_raised_and_follows_the_policy(
    make_app: AppFactory,
) -> None:
    app = make_app()
    bad = app.task(sandbox=True, retries=1, backoff=Backoff.fixed(0))(sandboxed.bad_input)
    hopeless = app.task(sandbox=True, retries=5)(sandboxed.hopeless)
    bad_job, hopeless_job = await bad.enqueue(), await hopeless.enqueue()
    stats = await app.work(burst=True)
    assert (stats.retried, stats.failed) == (1, 2)
    await bad_job.refresh()
    assert (bad_job.status, bad_job.attempts) == (JobState.FAILED, 2)
    assert bad_job.error is not None
    assert (bad_job.error.type, bad_job.error.message) == ("ValueError", "bad input in the child")
    assert "sandboxed.py" in (bad_job.error.traceback or "")
    await hopeless_job.refresh()
    assert (hopeless_job.status, hopeless_job.attempts) == (JobState.FAILED, 1)
    assert hopeless_job.error is not None and hopeless_job.error.type == "Hopeless"


async def test_a_queue_backoff_raised_in_the_sandbox_backs_the_queue_off(
    make_app: AppFactory,
) -> None:
    app = make_app()
    backs_off = app.task(queue="api", sandbox=True, retries=0)(sandboxed.backs_off)
    job = await backs_off.enqueue()
    stats = await app.work(queues=["api"], burst=True)
    assert (stats.released, stats.failed) == (1, 0)
    await job.refresh()
    assert (job.status, job.attempts) == (JobState.WAITING, 0)  # given back, not counted
    assert (await app.jobs.queue_limits("api")).backoff_until >= now_ms() + 20_000


def test_a_sandboxed_task_must_be_importable_by_module_path() -> None:
    from conveyor import Conveyor

    app = Conveyor("memory://")

    def nested() -> None:
        return None

    with pytest.raises(ProgrammingError, match="importable by module path"):
        app.task(sandbox=True)(nested)
    with pytest.raises(ProgrammingError, match="importable by module path"):
        app.task(sandbox=True, name="lambda")(lambda: None)


def _assert_gone(pid: int) -> None:
    """The child was killed and reaped: no process (not even a zombie) has its pid."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
