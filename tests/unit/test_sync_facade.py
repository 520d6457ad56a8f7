"""The sync facade's private loop thread."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import ProgrammingError
from conveyor.jobs.sync_job import LoopThread


def test_calling_the_facade_from_its_own_loop_is_a_programming_error() -> None:
    runner = LoopThread()

    async def reenter() -> None:
        runner.call(asyncio.sleep(0))  # would deadlock: the loop waits on itself

    try:
        with pytest.raises(ProgrammingError, match="its own loop"):
            runner.call(reenter())
    finally:
        runner.stop()
