"""A worker's own options are checked before it touches the store."""

from __future__ import annotations

import asyncio
import os

import pytest
from click.testing import CliRunner

from conveyor import BadInputError, Conveyor


@pytest.mark.parametrize("concurrency", [-1, 0, 10_001, 2.5, True, "4"])
async def test_a_worker_refuses_a_concurrency_that_is_not_1_to_10000(concurrency: object) -> None:
    app = Conveyor("memory://", configure_logging=False)

    @app.task
    async def noop() -> None:
        return None

    await noop.enqueue()
    async with asyncio.timeout(10):  # a negative one used to wait forever
        with pytest.raises(BadInputError, match=r"concurrency must be an integer in 1\.\.10000"):
            await app.work(concurrency=concurrency, burst=True)  # type: ignore[arg-type]
    await app.close()


async def test_a_worker_without_concurrency_takes_the_setting() -> None:
    app = Conveyor("memory://", configure_logging=False, concurrency=3)
    assert app.worker(queues=["default"]).concurrency == 3
    assert app.worker(queues=["default"], concurrency=1).concurrency == 1


@pytest.mark.parametrize("processes", ["0", "-2", "many", "1.5"])
def test_worker_processes_must_be_a_positive_integer_or_auto(processes: str) -> None:
    from conveyor.cli import cli

    answer = CliRunner().invoke(cli, ["worker", "nowhere:app", "--processes", processes])
    assert answer.exit_code == 2
    assert "--processes" in answer.output


def test_worker_processes_auto_is_the_number_of_usable_cores() -> None:
    from conveyor.cli.supervisor import usable_cores

    assert usable_cores() == len(os.sched_getaffinity(0))
