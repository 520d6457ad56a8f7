"""A Redis server error that is not a connection problem never reaches a caller as a
redis-py exception: "come back later" answers are StoreUnavailableError, the rest
StoreRefusedError.

Each test starts its own redis-server (never the shared one), since it reconfigures it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor, StoreRefusedError, StoreUnavailableError
from tests.redis_servers import running_server

pytestmark = [
    pytest.mark.redis,
]


async def test_a_server_out_of_memory_is_store_unavailable(tmp_path: Path) -> None:
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, log_level="WARNING")

        @app.task
        async def noop() -> None:
            return None

        try:
            await noop.enqueue()  # connected, scripts loaded
            server.client().config_set("maxmemory", "1")  # noeviction: every write is refused
            with pytest.raises(StoreUnavailableError, match="memory"):
                await noop.enqueue()
        finally:
            server.client().config_set("maxmemory", "0")
            await app.close()


async def test_a_key_of_the_wrong_type_where_conveyor_keeps_jobs_is_store_refused(
    tmp_path: Path,
) -> None:
    with running_server(directory=tmp_path / "redis") as server:
        app = Conveyor(server.url, log_level="WARNING")

        @app.task
        async def noop() -> None:
            return None

        try:
            await noop.enqueue()
            server.client().set("cv:queues", "another application's value")
            with pytest.raises(StoreRefusedError, match="WRONGTYPE"):
                await noop.options(queue="other").enqueue()
        finally:
            await app.close()
