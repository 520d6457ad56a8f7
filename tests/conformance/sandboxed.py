"""Functions the sandbox tests run in child processes (importable by module path)."""

from __future__ import annotations

import ctypes
import os
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
