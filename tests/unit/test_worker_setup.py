"""What a worker refuses before it starts."""

from __future__ import annotations

import pytest

from conveyor import Conveyor, ProgrammingError


async def test_a_worker_with_no_queues_to_serve_is_a_programming_error() -> None:
    app = Conveyor("memory://", log_level="WARNING")
    try:
        with pytest.raises(ProgrammingError, match="no queues"):
            await app.work(burst=True)
    finally:
        await app.close()
