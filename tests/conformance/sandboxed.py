"""Functions the sandbox tests run in child processes (importable by module path)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from pathlib import Path

from conveyor import NonRetryableError, QueueBackoff, current_job


def where(a: int, b: int) -> dict[str, int]:
    ctx = current_job()
    ctx.set_progress(50)
    ctx.log("in the child")
    return {"sum": a + b, "pid": os.getpid(), "fence": ctx.fence}


async def double(x: int) -> int:
    return 2 * x


def segfault() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def exit_hard() -> None:
    os._exit(3)


def spin(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        time.sleep(0.01)


def bad_input() -> None:
    raise ValueError("bad input in the child")


class Hopeless(NonRetryableError):
    pass


def hopeless() -> None:
    raise Hopeless("no point in trying again")


def backs_off() -> None:
    raise QueueBackoff(30, "downstream said 429")


def spawn_and_spin(pid_file: str) -> None:
    child = subprocess.Popen(["sleep", "60"])
    Path(pid_file).write_text(str(child.pid))
    while True:
        time.sleep(0.01)


def raise_quoted(n: int) -> None:
    raise ValueError('"' * n)  # 2 bytes a character in JSON


def log_wide(n: int) -> str:
    current_job().log("€" * n)  # 3 bytes a character in UTF-8
    return "done"


def log_unclipped(n: int) -> str:
    """A child that breaks the protocol: sends a log frame over the worker's limit."""
    from conveyor import serialization

    def unclipped(text: str, limit: int, *, tail: bool = False) -> str:
        return text

    serialization.clip = unclipped
    current_job().log("€" * n)
    return "never seen"
