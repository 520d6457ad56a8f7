"""Opening a SQLite store: one that cannot be used fails with a typed error and holds
nothing open; several connections opening one new file together all succeed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from conveyor import Conveyor, StoreUnavailableError
from conveyor.stores.sqlite.database import Database


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


def test_connections_opening_one_new_file_together_all_open(tmp_path: Path) -> None:
    """Switching a new file to WAL answers ``database is locked`` at once, without the
    busy timeout, to a connection that races another one doing it: about one round in
    seven failed here before ``use_wal`` waited for its turn (so 60 rounds pass by luck
    about once in 6,000)."""
    failures: list[str] = []

    def open_and_close(path: Path, start: threading.Barrier) -> None:
        db = Database(path, synchronous="NORMAL", busy_timeout_s=5)
        start.wait()
        try:
            db.open_sync()
            db.close_sync()
        except StoreUnavailableError as exc:
            failures.append(str(exc))

    for round_ in range(60):
        path = tmp_path / f"jobs-{round_}.db"
        start = threading.Barrier(4)
        threads = [threading.Thread(target=open_and_close, args=(path, start)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
