"""Opening a SQLite store that cannot be used fails with a typed error and holds nothing open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor import Conveyor, StoreUnavailableError


def _open_descriptors(path: Path) -> list[str]:
    """This process's file descriptors that point at ``path``."""
    fds = Path("/proc/self/fd")
    found = []
    for fd in os.listdir(fds):
        try:
            if Path(os.readlink(fds / fd)) == path:
                found.append(fd)
        except OSError:  # closed while listing
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
async def test_a_file_that_is_not_a_database_is_refused_and_left_closed(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database, " * 512)
    app = Conveyor(f"sqlite:///{path}", log_level="WARNING")
    try:
        with pytest.raises(StoreUnavailableError, match="not a database") as raised:
            await app.open()
        # ``raised`` keeps the error and its chain alive, so a connection that only
        # its traceback still referenced would still hold the file open here.
        assert _open_descriptors(path) == []
        assert "notes.db" in str(raised.value)
    finally:
        await app.close()
